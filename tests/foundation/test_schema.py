"""The run-folder schema: conform, write in parts, read back, version refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from asyncbench.errors import RunFolderError
from reports import schema


def _client_rows(count: int, trial: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["r"] * count,
            "trial": [trial] * count,
            "variant": ["direct"] * count,
            "scenario": ["baseline"] * count,
            "worker": ["w0"] * count,
            "intended_at_ms": [1000.0 + index for index in range(count)],
            "sent_at_ms": [1000.5 + index for index in range(count)],
            "latency_ms": [12.5] * count,
            "latency_from_intended_ms": [13.0] * count,
            "status_code": [200] * count,
            "outcome": ["succeeded"] * count,
            "request_id": [f"id-{index}" if index else None for index in range(count)],
        }
    )


def test_parts_concatenate_and_optional_columns_are_null(tmp_path: Path) -> None:
    schema.write_table(tmp_path, schema.CLIENT, _client_rows(3), part="0001-w0-00000")
    schema.write_table(tmp_path, schema.CLIENT, _client_rows(2, trial=2), part="0002-w0-00000")
    frame = schema.read_table(tmp_path, schema.CLIENT)
    assert list(frame.columns) == schema.CLIENT.columns
    assert len(frame) == 5
    assert sorted(frame["trial"].unique().tolist()) == [1, 2]
    assert frame["time_to_result_ms"].isna().all()
    assert frame["request_id"].isna().sum() == 2  # nulls survive, not "None" strings


def test_missing_required_and_unknown_columns_are_refused(tmp_path: Path) -> None:
    rows = _client_rows(1).drop(columns=["latency_ms"])
    with pytest.raises(ValueError, match="latency_ms"):
        schema.write_table(tmp_path, schema.CLIENT, rows, part="p")
    rows = _client_rows(1).assign(latncy=1)
    with pytest.raises(ValueError, match="latncy"):
        schema.write_table(tmp_path, schema.CLIENT, rows, part="p")


def test_empty_kind_reads_as_empty_frame_with_columns(tmp_path: Path) -> None:
    frame = schema.read_table(tmp_path, schema.SERVER)
    assert frame.empty
    assert list(frame.columns) == schema.SERVER.columns


def test_manifest_version_checks(tmp_path: Path) -> None:
    schema.write_manifest(tmp_path, {"run_id": "r", "partial": False})
    assert schema.read_manifest(tmp_path)["schema_version"] == schema.SCHEMA_VERSION
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["schema_version"] = schema.SCHEMA_VERSION + 1
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunFolderError, match="newer"):
        schema.read_manifest(tmp_path)


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no run folder"):
        schema.read_manifest(tmp_path / "absent")
    with pytest.raises(RunFolderError, match="not a run folder"):
        schema.read_manifest(tmp_path)


def test_every_column_is_documented() -> None:
    for spec in schema.TABLES.values():
        for field in spec.schema:
            assert field.metadata and field.metadata[b"doc"], (spec.name, field.name)
        assert set(spec.required) <= set(spec.columns)
