"""The stream handler with BATCH_CONCURRENCY > 1: records run at once, failures stay exact."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from processor import stream
from processor.runtime import Runtime
from tests.processor.events import (
    START_MS,
    FakeClock,
    FakeContext,
    batch,
    get_item,
    insert,
    sequence_numbers,
)

OK = '{"work_ms": 20}'
DOWN = json.dumps({"work_ms": 20, "outages": [[START_MS - 60_000, START_MS + 60_000]]})


def test_records_of_a_batch_run_at_once(
    make_runtime: Callable[..., Runtime], dynamodb: Any
) -> None:
    # Three records can only pass the barrier together: one after another, it would time out.
    barrier = threading.Barrier(3, timeout=10)
    runtime = make_runtime(batch_concurrency=3)
    runtime.sleep = lambda seconds: barrier.wait() and None
    records = [insert(dynamodb, name, OK) for name in ("a", "b", "c")]
    assert stream.handle(batch(*records), FakeContext(), runtime) == {"batchItemFailures": []}
    assert {get_item(dynamodb, name)["status"] for name in "abc"} == {"SUCCEEDED"}  # type: ignore[index]


def test_a_failed_record_mid_batch_reports_exactly_it_and_every_later_one(
    make_runtime: Callable[..., Runtime], dynamodb: Any, clock: FakeClock
) -> None:
    bodies = [OK, OK, OK, DOWN, OK, OK, DOWN, OK]
    records = [insert(dynamodb, f"r{index}", body) for index, body in enumerate(bodies)]
    runtime = make_runtime(batch_concurrency=4)

    response = stream.handle(batch(*records), FakeContext(), runtime)

    # The mapping checkpoints at the lowest failure: that record and all after it come back.
    assert response == {"batchItemFailures": sequence_numbers(*records[3:])}
    for index in range(3):
        assert get_item(dynamodb, f"r{index}")["status"] == "SUCCEEDED"  # type: ignore[index]
    assert get_item(dynamodb, "r3")["status"] == "PENDING"  # type: ignore[index]
    done_after = [
        index
        for index in range(4, len(records))
        if get_item(dynamodb, f"r{index}")["status"] == "SUCCEEDED"  # type: ignore[index]
    ]

    # The redelivery after the outage: the failed record succeeds, the later records that were
    # already done are recognised as terminal and not processed again.
    clock.now = START_MS + 120_000
    redelivered = stream.handle(batch(*records[3:]), FakeContext(), runtime)
    assert redelivered == {"batchItemFailures": []}
    for index in range(len(records)):
        item = get_item(dynamodb, f"r{index}")
        assert item is not None and item["status"] == "SUCCEEDED"
        # r6 failed too if it started before the stop, then its redelivery is its second try.
        expected_attempts = {3: {2}, 6: {1, 2}}.get(index, {1})
        assert item["attempts"] in expected_attempts
        assert item["duplicates"] == (1 if index in done_after else 0)


def test_a_failed_first_record_hands_back_the_whole_batch(
    make_runtime: Callable[..., Runtime], dynamodb: Any
) -> None:
    bodies = [DOWN] + [OK] * 7
    records = [insert(dynamodb, f"r{index}", body) for index, body in enumerate(bodies)]
    runtime = make_runtime(batch_concurrency=2)
    response = stream.handle(batch(*records), FakeContext(), runtime)
    # Records beside it may have finished (they are then duplicates on redelivery); the
    # checkpoint is still the first record.
    assert response == {"batchItemFailures": sequence_numbers(*records)}
    first = get_item(dynamodb, "r0")
    assert first is not None and first["status"] == "PENDING" and first["attempts"] == 1


def test_short_time_hands_the_rest_back_with_concurrency(
    make_runtime: Callable[..., Runtime], dynamodb: Any
) -> None:
    records = [insert(dynamodb, f"r{index}", OK) for index in range(4)]
    runtime = make_runtime(batch_concurrency=4)
    response = stream.handle(batch(*records), FakeContext(remaining_ms=1500), runtime)
    assert response == {"batchItemFailures": sequence_numbers(*records[1:])}
    assert get_item(dynamodb, "r0")["status"] == "SUCCEEDED"  # type: ignore[index]
