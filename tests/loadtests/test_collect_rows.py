"""Which trial an item or parked record belongs to, and how rows are shaped (pure, no stage)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from loadtests.collect import TrialWindow, collect_trial, parked_rows

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
