"""Which trial an item or parked record belongs to, and how rows are shaped (pure, no stage)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loadtests import collect
from loadtests.collect import TrialWindow, _TrialState, collect_trial, parked_rows
from loadtests.run import server_part_writer
from reports.schema import SERVER, part_paths, read_table

RECORD = {
    "requestContext": {"condition": "RecordAgeExceeded", "approximateInvokeCount": 3},
    "timestamp": "2026-11-28T14:22:33.500Z",
    "DDBStreamBatchInfo": {"shardId": "s", "startSequenceNumber": "1", "batchSize": 2},
}


class Side:
    source = "local"

    def __init__(self, items: list[dict[str, Any]], parked: list[dict[str, Any]]) -> None:
        self._items, self._parked = items, parked

    def begin_trial(self) -> None:
        pass

    def items(self, variant: str) -> list[dict[str, Any]]:
        return self._items

    def new_parked_records(self) -> list[dict[str, Any]]:
        parked, self._parked = self._parked, []
        return parked

    def resolve(self, record: Any) -> list[str]:
        return ["old", "new"]

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        return []


def test_parked_rows_one_per_stream_record_in_the_trial_of_their_request() -> None:
    window = TrialWindow("r", 3, "storage_first", 0, 1)
    rows = parked_rows([(RECORD, ["old", "new"]), (RECORD, [])], window, {"old": 1})
    assert rows["request_id"].tolist()[:2] == ["old", "new"]
    assert pd.isna(rows["request_id"].iloc[2])  # unresolvable: kept, without an id
    assert rows["trial"].tolist() == [1, 3, 3]
    assert rows["timestamp_ms"].iloc[0] == 1795875753500.0
    assert (rows["condition"] == "RecordAgeExceeded").all()


def test_items_without_client_rows_go_to_the_trial_of_their_accepted_time() -> None:
    earlier = TrialWindow("r", 1, "storage_first", 1_000_000, 1_010_000)
    window = TrialWindow("r", 3, "storage_first", 2_000_000, 2_010_000)
    items = [
        {"id": "new", "status": "PENDING", "accepted_at_ms": 2_000_500},  # parked: settled
        {"id": "late", "status": "SUCCEEDED", "accepted_at_ms": 1_005_000},  # no client row
        {"id": "seen", "status": "SUCCEEDED", "accepted_at_ms": 1_001_000},  # collected before
        {"id": "mine", "status": "SUCCEEDED", "accepted_at_ms": 1_002_000, "request": "é"},
    ]
    client = pd.DataFrame({"trial": [3], "request_id": ["mine"], "outcome": ["accepted"]})
    result = collect_trial(
        Side(items, [RECORD]),
        window,
        client,
        timeout_s=0,
        skip_ids=frozenset({"seen"}),
        earlier=[earlier],
        earlier_trials={"seen": 1, "old": 1},
    )
    assert result.settled and result.unfinished == 0
    trial_of = dict(zip(result.server["request_id"], result.server["trial"], strict=True))
    assert trial_of == {"new": 3, "late": 1, "mine": 3}  # a client row outranks the window
    assert result.trials == trial_of
    assert result.server.set_index("request_id").loc["mine", "request_bytes"] == 2
    assert dict(zip(result.parked["request_id"], result.parked["trial"], strict=True)) == {
        "old": 1,
        "new": 3,
    }


def test_accepted_request_without_item_is_unfinished() -> None:
    window = TrialWindow("r", 1, "direct", 0, 1)
    client = pd.DataFrame(
        {"trial": [1, 1], "request_id": ["gone", None], "outcome": ["succeeded", "timeout"]}
    )
    result = collect_trial(Side([], []), window, client, timeout_s=0)
    assert not result.settled and result.unfinished == 1 and result.server.empty


class Item(dict[str, Any]):
    """An item dict that can be watched by a weak reference (to see who keeps it alive)."""


class PagedSide(Side):
    """Yields items a page at a time, counting how many it has handed out are still alive.
    Items in ``pending`` are PENDING during the first ``pending_scans`` scans."""

    def __init__(self, count: int, page_size: int, pending: set[int], pending_scans: int = 99):
        super().__init__([], [])
        self.count, self.page_size, self.pending = count, page_size, pending
        self.pending_scans = pending_scans
        self.alive = self.most_alive = 0
        self.refs: list[weakref.ref[Item]] = []
        self.scans = 0

    def items(self, variant: str) -> Iterator[dict[str, Any]]:
        self.scans += 1
        pending = self.pending if self.scans <= self.pending_scans else set()
        for start in range(0, self.count, self.page_size):
            page = [
                Item(id=f"id-{n}", status="PENDING" if n in pending else "SUCCEEDED",
                     accepted_at_ms=1_000.0, request="{}")
                for n in range(start, min(start + self.page_size, self.count))
            ]  # fmt: skip
            for item in page:
                self.refs.append(weakref.ref(item, self._gone))
                self.alive += 1
                self.most_alive = max(self.most_alive, self.alive)
                yield item
            del page, item

    def _gone(self, _: object) -> None:
        self.alive -= 1


class RecordingSink:
    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self.events: list[str] = []

    def write(self, part: pd.DataFrame) -> None:
        self.parts.append(part)
        self.events.append(f"write {len(part)}")

    def discard(self) -> None:
        self.parts = []
        self.events.append("discard")

    def keep(self) -> None:
        self.events.append("keep")


def test_collection_writes_server_parts_and_never_holds_more_than_a_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collect, "PART_PROGRESS_S", 0.0)
    window = TrialWindow("r", 2, "storage_first", 0, 10_000)
    client = pd.DataFrame(
        {"trial": 2, "request_id": [f"id-{n}" for n in range(999)], "outcome": "accepted"}
    )
    side = PagedSide(1_000, page_size=25, pending={7, 700})
    sink = RecordingSink()
    lines: list[str] = []
    result = collect_trial(
        side, window, client, timeout_s=0, skip_ids=frozenset({"id-999"}),
        server_sink=sink, part_rows=300, progress=lines.append,
    )  # fmt: skip
    assert side.scans == 1  # the poll's scan wrote the rows: no second scan
    # The collector keeps no item: only the side's current page is ever alive.
    assert side.most_alive <= 25
    assert sink.events == ["discard", "write 300", "write 300", "write 300", "write 99", "keep"]
    ids = pd.concat(sink.parts)["request_id"]
    assert ids.is_unique and set(ids) == {f"id-{n}" for n in range(999)}  # all once, skip kept
    assert result.server.empty and result.items == 999 and result.server_parts == 4
    assert result.unfinished == 2 and not result.settled  # id-7, id-700 still PENDING
    assert result.request_ids == frozenset(ids)
    assert lines == [
        f"collect: trial 2 storage_first: {n:,} items read into {p} parts so far"
        for p, n in ((1, 300), (2, 600), (3, 900))
    ]


def test_the_last_poll_s_parts_are_the_trial_s_rows(tmp_path: Path) -> None:
    window = TrialWindow("r", 1, "storage_first", 0, 10_000)
    client = pd.DataFrame(
        {"trial": 1, "request_id": [f"id-{n}" for n in range(30)], "outcome": "accepted"}
    )
    side = PagedSide(30, page_size=7, pending={3, 20}, pending_scans=1)
    result = collect_trial(
        side, window, client, timeout_s=30, server_sink=server_part_writer(tmp_path, 1),
        part_rows=16,
    )  # fmt: skip
    assert result.settled and result.unfinished == 0 and side.scans == 2
    names = [path.name for path in part_paths(tmp_path, SERVER)]
    assert names == ["trial-001-0001.parquet", "trial-001-0002.parquet"]
    server = read_table(tmp_path, SERVER)
    assert sorted(server["request_id"]) == sorted(f"id-{n}" for n in range(30))
    assert set(server["status"]) == {"SUCCEEDED"}  # the second poll's rows, not the first's
    assert not (tmp_path / ".staging").exists()


def test_between_polls_only_ids_are_kept() -> None:
    window = TrialWindow("r", 1, "storage_first", 0, 10_000)
    client = pd.DataFrame(
        {"trial": 1, "request_id": ["id-0", "id-1", "gone"], "outcome": "accepted"}
    )
    side = PagedSide(50, 10, pending={1, 30})
    state = _TrialState(side, window, client, frozenset(), (), RecordingSink())
    assert state.refresh() == 3  # id-1, id-30 pending (id-30: placed by its accepted time)
    assert state.pending == {"id-1", "id-30"} and state.unseen == {"gone"}
    assert state.trials == {f"id-{n}": 1 for n in range(50)}
    assert side.alive == 0  # no item outlives the scan
