"""The recorder's batching and part files, and the request bodies it records (no Locust)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtests import recorder as recorder_module
from loadtests.body import BodyFactory, outage_window_ms
from loadtests.recorder import PartWriter, Recorder, columns_to_rows, rows_to_columns
from loadtests.scenario import load_scenario
from reports.schema import CLIENT, read_table


def _row(number: int, worker: str) -> dict[str, Any]:
    return {
        "run_id": "r", "trial": 3, "variant": "direct", "scenario": "baseline", "worker": worker,
        "attempt": 1, "intended_at_ms": 1000.0 + number, "sent_at_ms": 1001.0 + number,
        "latency_ms": 5.0, "latency_from_intended_ms": 6.0, "status_code": 200,
        "outcome": "succeeded", "request_id": f"id-{number}", "warmup": False,
        "target_rate_per_s": 20.0, "stage": 0, "time_to_result_ms": None, "result_status": None,
        "error": None,
    }  # fmt: skip


def test_parts_never_collide_and_every_row_is_written(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path, trial=3)
    recorder = Recorder(writer)
    for number in range(10):
        recorder.add("w0" if number % 2 else "w1", _row(number, "w0" if number % 2 else "w1"))
    recorder.flush()
    recorder.add("w0", _row(10, "w0"))
    recorder.flush()
    recorder.flush()  # nothing buffered: no empty part
    assert not list((tmp_path / CLIENT.location).glob("*.parquet"))  # open parts: not yet
    recorder.close()
    names = sorted(path.stem for path in (tmp_path / CLIENT.location).glob("*.parquet"))
    assert names == ["0003-w0-00000", "0003-w1-00000"]  # a flush is a row group, not a part
    assert not list((tmp_path / CLIENT.location).glob("*.tmp"))
    assert dict(writer.written) == {"w0": 6, "w1": 5}
    assert dict(recorder.recorded) == {"w0": 6, "w1": 5}
    frame = read_table(tmp_path, CLIENT)
    assert sorted(frame["request_id"]) == sorted(f"id-{n}" for n in range(11))
    assert frame["latency_ms"].dtype == "float64"


def test_flush_is_due_by_time_or_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    batches: list[int] = []
    recorder = Recorder(lambda worker, rows: batches.append(len(rows)), clock=lambda: now[0])
    recorder.add("w0", _row(0, "w0"))
    assert not recorder.due()
    now[0] = recorder_module.FLUSH_INTERVAL_S
    assert recorder.due()
    recorder.flush()
    monkeypatch.setattr(recorder_module, "FLUSH_ROWS", 3)
    recorder.extend("w0", [_row(n, "w0") for n in range(3)])
    assert recorder.due()
    recorder.flush()
    assert batches == [1, 3]


def test_the_wire_format_round_trips() -> None:
    rows = [_row(n, "w1") for n in range(3)]
    assert columns_to_rows(rows_to_columns(rows)) == rows


def test_bodies_carry_the_scenario() -> None:
    scenario = load_scenario("outage")
    factory = BodyFactory(scenario, zero_ms=1_000_000.0, seed=7)
    raw, poison = factory.build()
    body = json.loads(raw)
    assert body["work_ms"] == scenario.work_ms and body["fail"] == "never" and not poison
    assert body["outages"] == [[1_020_000, 1_035_000]]
    assert outage_window_ms(load_scenario("baseline"), 0) is None
    assert len(body["payload"].encode("utf-8")) == scenario.payload_bytes


@pytest.mark.parametrize("size", [0, 1, 17, 64, 1000])
def test_payload_has_the_exact_size_and_awkward_characters(size: int) -> None:
    scenario = load_scenario("baseline").__class__.from_dict(
        {"name": "p", "payload_bytes": size, "stages": [{"duration_s": 1, "rate_per_s": 1}],
         "warmup_s": 0},
        source="test",
    )  # fmt: skip
    payload = json.loads(BodyFactory(scenario, 0, 1).build()[0])["payload"]
    assert len(payload.encode("utf-8")) == size
    if size >= 64:
        assert "'" in payload and "\\" in payload and not payload.isascii()


def test_poison_share_follows_the_seed() -> None:
    scenario = load_scenario("poison")
    factory = BodyFactory(scenario, 0, seed=3)
    again = BodyFactory(scenario, 0, seed=3)
    first = [factory.build()[1] for _ in range(4000)]
    assert first == [again.build()[1] for _ in range(4000)]
    assert sum(first) / len(first) == pytest.approx(scenario.poison_share, abs=0.015)
    assert all(
        json.loads(body)["fail"] == ("always" if poison else "never")
        for body, poison in (factory.build() for _ in range(50))
    )


def test_the_fast_arrow_path_writes_what_the_schema_path_writes(tmp_path: Path) -> None:
    import pandas as pd

    from reports.schema import write_table

    rows = [_row(number, "w0") for number in range(5)]
    rows[1].update(time_to_result_ms=12.5, result_status="SUCCEEDED", error="x", warmup=True)
    fast_writer = PartWriter(tmp_path / "fast", trial=3)
    fast_writer("w0", rows)
    fast_writer.close()
    write_table(tmp_path / "slow", CLIENT, pd.DataFrame.from_records(rows), part="p")
    fast, slow = read_table(tmp_path / "fast", CLIENT), read_table(tmp_path / "slow", CLIENT)
    pd.testing.assert_frame_equal(fast, slow)


def test_parts_roll_by_rows_and_by_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "PART_ROWS", 4)
    now = [0.0]
    writer = PartWriter(tmp_path, trial=1, clock=lambda: now[0])
    writer("w0", [_row(n, "w0") for n in range(3)])
    writer("w0", [_row(n, "w0") for n in range(3, 5)])  # 5 rows >= 4: the part closes
    writer("w0", [_row(5, "w0")])
    now[0] = recorder_module.PART_SECONDS  # old enough: closes after this batch
    writer("w0", [_row(6, "w0")])
    writer("w0", [_row(7, "w0")])  # a new part, open until close()
    location = tmp_path / CLIENT.location
    assert sorted(path.stem for path in location.glob("*.parquet")) == [
        "0001-w0-00000",
        "0001-w0-00001",
    ]
    writer.close()
    parts = sorted(location.glob("*.parquet"))
    assert [len(read_table_part(path)) for path in parts] == [5, 2, 1]
    frame = read_table(tmp_path, CLIENT)
    assert sorted(frame["request_id"]) == sorted(f"id-{n}" for n in range(8))
    assert writer.written["w0"] == 8


def read_table_part(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def test_a_batch_of_columns_writes_what_its_rows_write(tmp_path: Path) -> None:
    import pandas as pd

    rows = [_row(number, "w1") for number in range(4)]
    rows[2].update(time_to_result_ms=3.5, result_status="FAILED", error="boom", warmup=True)
    by_rows, by_columns = PartWriter(tmp_path / "rows", 3), PartWriter(tmp_path / "columns", 3)
    by_rows("w1", rows)
    by_columns.write_columns("w1", rows_to_columns(rows))
    by_columns.write_columns("w1", rows_to_columns([]))  # an empty batch: no row group
    by_columns.write_columns("w1", rows_to_columns(rows[:1]))
    by_rows("w1", rows[:1])
    by_rows.close()
    by_columns.close()
    assert by_columns.written["w1"] == 5
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "rows", CLIENT), read_table(tmp_path / "columns", CLIENT)
    )
    # Columns short of the schema (a worker of another version) go through the validating path.
    short = rows_to_columns(rows)
    del short["error"]
    odd = PartWriter(tmp_path / "odd", 3)
    odd.write_columns("w1", short)
    assert odd.written["w1"] == 4
    assert read_table(tmp_path / "odd", CLIENT)["error"].isna().all()
