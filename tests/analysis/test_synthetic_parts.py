"""The part-by-part synthetic generator writes build_run's run shape with bounded parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import synthetic_parts
from analysis.analyze import Options, analyze_run
from analysis.load import load_prices, load_run
from analysis.synthetic import SyntheticSpec, build_run, synthetic_manifest, true_quantile
from analysis.synthetic_parts import write_run_in_parts
from reports import schema

# Every feature of the spec, so each deterministic column is compared with build_run's.
FULL = SyntheticSpec(
    scenario="outage",
    stages=((20.0, 10.0), (15.0, 20.0)),
    warmup_s=5.0,
    repetitions=2,
    outage=(12.0, 6.0),
    drain_rate_per_s=15.0,
    lost_per_trial=3,
    parked_per_trial=2,
    pending_per_trial=2,
    redriven_per_trial=2,
    retried_per_trial=4,
    generator_limit_per_s=12.0,
    drift={"direct": (1.0, 1.5)},
    seed=3,
)
RANDOM_COLUMNS = ["latency_ms", "latency_from_intended_ms"]
_KEYS = {
    "client": ["trial", "intended_at_ms", "attempt"],
    "server": ["trial", "request_id"],
    "metrics": ["trial", "metric", "timestamp_ms"],
}


def _read(run_dir: Path, spec: schema.TableSpec) -> pd.DataFrame:
    return schema.read_table(run_dir, spec)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, na_position="first", kind="stable").reset_index(drop=True)


def _client_keys(frame: pd.DataFrame) -> pd.DataFrame:
    # A failed first attempt has no request id: key it by its intended time instead.
    return frame.assign(request_id=frame["request_id"].fillna("")).sort_values(
        ["trial", "intended_at_ms", "attempt"], kind="stable"
    )


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("parts") / "run"
    write_run_in_parts(run_dir, FULL, "parts-1", part_rows=37)
    return run_dir


def test_every_column_but_the_random_ones_equals_build_run(streamed: Path) -> None:
    built = build_run(FULL, "parts-1")
    client = _client_keys(_read(streamed, schema.CLIENT))
    expected = _client_keys(schema.conform(built.client, schema.CLIENT).to_pandas())
    assert len(client) == len(expected)
    pd.testing.assert_frame_equal(
        client.drop(columns=RANDOM_COLUMNS).reset_index(drop=True),
        expected.drop(columns=RANDOM_COLUMNS).reset_index(drop=True),
    )
    server_keys = ["trial", "request_id"]
    pd.testing.assert_frame_equal(
        _sorted(_read(streamed, schema.SERVER), server_keys).drop(columns="status"),
        _sorted(schema.conform(built.server, schema.SERVER).to_pandas(), server_keys).drop(
            columns="status"
        ),
    )
    metric_keys = ["trial", "metric", "timestamp_ms"]
    pd.testing.assert_frame_equal(
        _sorted(_read(streamed, schema.METRICS), metric_keys),
        _sorted(schema.conform(built.metrics, schema.METRICS).to_pandas(), metric_keys),
    )
    for spec, table in (
        (schema.PARKED, built.parked),
        (schema.REDRIVEN, built.redriven),
        (schema.TRIALS, built.trials),
    ):
        pd.testing.assert_frame_equal(
            _read(streamed, spec), schema.conform(table, spec).to_pandas(), check_like=False
        )
    assert schema.read_manifest(streamed) == {
        **synthetic_manifest(FULL, "parts-1"),
        "schema_version": schema.SCHEMA_VERSION,
    }


def test_status_differs_only_where_poison_is_drawn(streamed: Path) -> None:
    # Poison requests are random; FULL has none, so every status is build_run's.
    built = build_run(FULL, "parts-1").server.sort_values(["trial", "request_id"])
    statuses = _read(streamed, schema.SERVER).sort_values(["trial", "request_id"])["status"]
    assert statuses.tolist() == built["status"].tolist()
    assert {"PENDING", "SUCCEEDED"} <= set(statuses)


def test_parts_hold_at_most_part_rows_requests(streamed: Path) -> None:
    clients = schema.part_paths(streamed, schema.CLIENT)
    # 2 stages: 200 + 300 requests per trial, 4 trials, parts of 37 requests.
    assert len(clients) == 4 * -(-500 // 37)
    for path in clients:
        rows = pq.read_table(path, columns=["attempt"])["attempt"].to_numpy()
        assert len(rows) - (rows == 2).sum() <= 37
    assert clients[0].name == "client-0001-0001.parquet"
    assert not list(streamed.rglob("*.tmp"))


def test_the_rows_do_not_depend_on_the_part_size(streamed: Path, tmp_path: Path) -> None:
    whole = write_run_in_parts(tmp_path / "whole", FULL, "parts-1", part_rows=10_000)
    assert len(schema.part_paths(whole.run_dir, schema.CLIENT)) == 4
    for spec in (schema.CLIENT, schema.SERVER, schema.METRICS):
        keys = _KEYS[spec.name]
        pd.testing.assert_frame_equal(
            _sorted(_read(whole.run_dir, spec), keys), _sorted(_read(streamed, spec), keys)
        )


def test_latency_and_poison_follow_the_spec(tmp_path: Path) -> None:
    spec = SyntheticSpec(stages=((200.0, 50.0),), poison_share=0.05, repetitions=1, seed=11)
    names: list[str] = []
    written = write_run_in_parts(tmp_path / "run", spec, part_rows=2_500, on_part=names.append)
    client = _read(tmp_path / "run", schema.CLIENT)
    assert written.client_rows == len(client) == 2 * 10_000
    assert written.server_rows == len(_read(tmp_path / "run", schema.SERVER))
    assert written.metric_rows == 2 * written.server_rows
    assert written.parts == len(names) == 2 * 4 * 3
    for variant in ("direct", "storage_first"):
        latency = client.loc[client["variant"] == variant, "latency_ms"]
        for q in (0.5, 0.9):
            assert latency.quantile(q) == pytest.approx(true_quantile(spec, variant, q), rel=0.05)
    rejected = (client["outcome"] == "rejected").mean() * 2  # direct only
    assert rejected == pytest.approx(0.05, abs=0.01)
    statuses = _read(tmp_path / "run", schema.SERVER)["status"]
    assert (statuses == "FAILED").sum() == pytest.approx(0.05 * 10_000, rel=0.2)


def test_columns_must_match_the_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lack required"):
        schema.write_columns(tmp_path, schema.PARKED, {"run_id": "r"}, 1, part="p")
    with pytest.raises(ValueError, match="has 2 values, not 3"):
        schema.write_columns(
            tmp_path, schema.PARKED,
            {"run_id": "r", "trial": 1, "variant": "v", "raw": np.array(["a", "b"])},
            3, part="p",
        )  # fmt: skip
    with pytest.raises(ValueError, match="unknown"):
        schema.write_columns(
            tmp_path, schema.PARKED,
            {"run_id": "r", "trial": 1, "variant": "v", "raw": "{}", "colour": 1}, 1, part="p",
        )  # fmt: skip


def test_parts_are_written_a_row_group_at_a_time(
    streamed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synthetic_parts, "CHUNK_ROWS", 10)
    chunked = write_run_in_parts(tmp_path / "chunked", FULL, "parts-1", part_rows=37)
    first = schema.part_paths(chunked.run_dir, schema.CLIENT)[0]
    assert pq.ParquetFile(first).metadata.num_row_groups == 4  # 37 requests: 10 + 10 + 10 + 7
    for spec in (schema.CLIENT, schema.SERVER, schema.METRICS, schema.TRIALS):
        # A retried request's failed first attempt comes first in its chunk: same rows, sorted.
        keys = _KEYS.get(spec.name, ["trial"])
        pd.testing.assert_frame_equal(
            _sorted(_read(chunked.run_dir, spec), keys), _sorted(_read(streamed, spec), keys)
        )


def test_uuid_request_ids_are_unique_uuid_shaped_and_match_items(tmp_path: Path) -> None:
    """request_ids="uuid": every id is 36 characters 8-4-4-4-12 of hex, ids are unique, and
    each stored item carries the id its request was answered with (the analysis finds the
    same classes as with short ids)."""
    short = write_run_in_parts(tmp_path / "short", FULL, "parts-1", part_rows=37)
    uuid = write_run_in_parts(tmp_path / "uuid", FULL, "parts-1", part_rows=37, request_ids="uuid")
    client = _read(uuid.run_dir, schema.CLIENT)
    ids = client["request_id"].dropna()
    assert ids.str.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").all()
    assert ids.is_unique
    server = _read(uuid.run_dir, schema.SERVER)
    assert set(server["request_id"]) <= set(ids)
    with pytest.raises(ValueError, match="request_ids must be one of"):
        write_run_in_parts(tmp_path / "bad", FULL, request_ids="long")
    options = Options(prices=load_prices())
    tallies = [analyze_run(load_run(run.run_dir), options).accounting for run in (short, uuid)]
    pd.testing.assert_frame_equal(tallies[0], tallies[1])
