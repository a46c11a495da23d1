"""The endpoints file round-trips, and a missing or newer file is refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncbench.errors import EndpointsError
from stack.endpoints import Endpoints, VariantEndpoint, read_endpoints, write_endpoints


def _endpoints() -> Endpoints:
    return Endpoints(
        target="local",
        region="local",
        variants={
            "direct": VariantEndpoint("http://127.0.0.1:1/direct", "t-direct"),
            "storage_first": VariantEndpoint(
                "http://127.0.0.1:1/storage-first/", "t-sf", failure_destination="/x.jsonl"
            ),
        },
        dynamodb_endpoint="http://127.0.0.1:2",
        extra={"metrics_log": "/m.jsonl"},
    )


def test_round_trip_matches_the_contract_shape(tmp_path: Path) -> None:
    path = write_endpoints(_endpoints(), tmp_path / "endpoints.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1
    assert set(data["variants"]) == {"direct", "storage_first"}
    assert "failure_destination" not in data["variants"]["direct"]
    loaded = read_endpoints(path)
    assert loaded.variant("storage_first").base_url == "http://127.0.0.1:1/storage-first"
    assert loaded.extra == {"metrics_log": "/m.jsonl"}
    assert loaded.dynamodb_endpoint == "http://127.0.0.1:2"


def test_missing_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(EndpointsError, match="asyncbench local up"):
        read_endpoints(tmp_path / "none.json", target="local")
    with pytest.raises(EndpointsError, match="asyncbench deploy"):
        read_endpoints(tmp_path / "none.json", target="aws")


def test_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    data = _endpoints().to_dict() | {"schema_version": 99}
    path.write_text(json.dumps(data))
    with pytest.raises(EndpointsError, match="newer"):
        read_endpoints(path)


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps({"schema_version": 1, "target": "local"}))
    with pytest.raises(EndpointsError, match="missing or has a malformed field"):
        read_endpoints(path)
    with pytest.raises(EndpointsError, match="no variant"):
        _endpoints().variant("nope")
