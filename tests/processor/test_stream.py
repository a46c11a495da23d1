"""The stream handler on realistic stream batches against moto's DynamoDB."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from processor import stream
from processor.runtime import Runtime
from tests.processor.events import (
    START_MS,
    TABLE,
    FakeClock,
    FakeContext,
    all_items,
    batch,
    get_item,
    insert,
    put_pending,
    sequence_numbers,
    stream_record,
)

OK = '{"work_ms": 20}'
DOWN = json.dumps({"work_ms": 20, "outages": [[START_MS - 60_000, START_MS + 60_000]]})
NO_FAILURES: dict[str, list[Any]] = {"batchItemFailures": []}


def test_success_makes_the_item_succeeded(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    record = insert(dynamodb, "a", OK)
    assert stream.handle(batch(record), FakeContext(), runtime) == NO_FAILURES
    assert get_item(dynamodb, "a") == {
        "id": "a",
        "run_id": "run-1",
        "status": "SUCCEEDED",
        "attempts": 1,
        "duplicates": 0,
        "accepted_at_ms": START_MS - 200,
        "started_at_ms": START_MS,
        "processed_at_ms": START_MS + 20,
        "cold_start": True,
        "request": OK,
        "ttl": (START_MS + 20) // 1000 + 86_400,
    }
    assert clock.sleeps == [0.02]
    assert logs[-1] | {"lagMs": 220} == logs[-1]
    assert logs[-1]["outcome"] == "succeeded"


def test_only_insert_records_run_the_logic(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    new = insert(dynamodb, "new", OK)
    # Items that are PENDING but whose records are not client INSERTs must stay untouched.
    modified = stream_record("MODIFY", "mod", image=put_pending(dynamodb, "mod", OK))
    removed = stream_record("REMOVE", "gone")
    expired = stream_record("REMOVE", "old", ttl_deletion=True)
    unknown = stream_record("UNKNOWN_TO_SDK_VERSION", "ttl", image=put_pending(dynamodb, "ttl", OK))
    odd_insert = stream_record("INSERT", "svc", image=put_pending(dynamodb, "svc", OK))
    odd_insert["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

    event = batch(modified, removed, new, expired, unknown, odd_insert)
    assert stream.handle(event, FakeContext(), runtime) == NO_FAILURES

    statuses = {item["id"]["S"]: item["status"]["S"] for item in all_items(dynamodb)}
    assert statuses == {"new": "SUCCEEDED", "mod": "PENDING", "ttl": "PENDING", "svc": "PENDING"}
    assert clock.sleeps == [0.02]
    assert [line["outcome"] for line in logs].count("skipped") == 5


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"fail": "always"}', "poison request"),
        ("not json at all", "invalid body: not JSON"),
        ('{"outages": [[5, 1]]}', "invalid body: outages[0]"),
    ],
)
def test_permanent_failure_is_failed_without_retry(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, body: str, error: str
) -> None:
    record = insert(dynamodb, "p", body)
    assert stream.handle(batch(record), FakeContext(), runtime) == NO_FAILURES
    item = get_item(dynamodb, "p")
    assert item is not None
    assert item["status"] == "FAILED" and item["error"].startswith(error)
    assert item["attempts"] == 1 and item["processed_at_ms"] == START_MS
    assert "ttl" not in item  # FAILURE_TTL_SECONDS 0: kept until someone looks
    assert clock.sleeps == []


def test_failure_ttl_when_configured(make_runtime: Callable[..., Runtime], dynamodb: Any) -> None:
    record = insert(dynamodb, "p", '{"fail": "always"}')
    stream.handle(batch(record), None, make_runtime(failure_ttl_seconds=3600))
    assert get_item(dynamodb, "p")["ttl"] == START_MS // 1000 + 3600  # type: ignore[index]


def test_transient_failure_backs_off_and_reports_this_and_every_later_record(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    first = insert(dynamodb, "first", OK)
    down = insert(dynamodb, "down", DOWN)
    later_ok = insert(dynamodb, "later", OK)
    later_modify = stream_record("MODIFY", "first")
    response = stream.handle(batch(first, down, later_ok, later_modify), FakeContext(), runtime)

    assert response == {"batchItemFailures": sequence_numbers(down, later_ok, later_modify)}
    assert get_item(dynamodb, "first")["status"] == "SUCCEEDED"  # type: ignore[index]
    failed = get_item(dynamodb, "down")
    assert failed is not None
    assert failed["status"] == "PENDING" and failed["attempts"] == 1
    assert failed["error"].startswith("downstream outage")
    assert failed["started_at_ms"] == START_MS + 20
    # Order kept: the record after the failing one was not processed.
    assert get_item(dynamodb, "later") == get_item(dynamodb, "later") | {
        "status": "PENDING",
        "attempts": 0,
    }
    assert clock.sleeps == [0.02, 0.5]  # first's work, then the first back-off
    assert logs[-1]["outcome"] == "retry" and logs[-1]["backoffMs"] == 500


@pytest.mark.parametrize(
    ("attempts_before", "remaining_ms", "expected_sleep"),
    [(0, 30_000, 0.5), (1, 30_000, 1.0), (3, 30_000, 4.0), (6, 30_000, 8.0), (6, 2500, 1.5)],
)
def test_backoff_doubles_is_capped_and_fits_the_invocation(
    make_runtime: Callable[..., Runtime],
    dynamodb: Any,
    clock: FakeClock,
    attempts_before: int,
    remaining_ms: int,
    expected_sleep: float,
) -> None:
    record = insert(dynamodb, "down", DOWN, attempts=attempts_before)
    runtime = make_runtime(max_attempts=20)
    response = stream.handle(batch(record), FakeContext(remaining_ms=remaining_ms), runtime)
    assert response == {"batchItemFailures": sequence_numbers(record)}
    assert clock.sleeps == [expected_sleep]
    assert get_item(dynamodb, "down")["attempts"] == attempts_before + 1  # type: ignore[index]


def test_retries_until_the_outage_ends_then_succeed(
    runtime: Runtime, dynamodb: Any, clock: FakeClock
) -> None:
    record = insert(dynamodb, "r", DOWN)
    assert stream.handle(batch(record), FakeContext(), runtime)["batchItemFailures"]
    clock.now = START_MS + 60_000  # the outage is over at the next delivery
    assert stream.handle(batch(record), FakeContext(), runtime) == NO_FAILURES
    item = get_item(dynamodb, "r")
    assert item is not None
    assert item["status"] == "SUCCEEDED" and item["attempts"] == 2
    assert "error" not in item  # no stale error on a success
    assert item["started_at_ms"] == START_MS  # processing first started at the first attempt
    assert item["processed_at_ms"] == START_MS + 60_020
    assert item["cold_start"] is False


def test_ceiling_by_attempts_marks_failed_and_continues_the_batch(
    runtime: Runtime, dynamodb: Any, clock: FakeClock
) -> None:
    # max_attempts is 5: this delivery is the fifth attempt.
    down = insert(dynamodb, "down", DOWN, attempts=4)
    after = insert(dynamodb, "after", OK)
    assert stream.handle(batch(down, after), FakeContext(), runtime) == NO_FAILURES
    item = get_item(dynamodb, "down")
    assert item is not None
    assert item["status"] == "FAILED" and item["attempts"] == 5
    assert item["error"].startswith("downstream outage")
    assert "gave up after 5 attempts" in item["error"]
    assert get_item(dynamodb, "after")["status"] == "SUCCEEDED"  # type: ignore[index]
    assert clock.sleeps == [0.02]  # no back-off for a record given up on


@pytest.mark.parametrize("as_datetime", [False, True])
def test_ceiling_by_record_age_marks_failed(
    make_runtime: Callable[..., Runtime], dynamodb: Any, as_datetime: bool
) -> None:
    runtime = make_runtime(max_record_age_s=600, max_attempts=100)
    created_s = START_MS / 1000 - 595
    old = stream_record(
        "INSERT",
        "old",
        image=put_pending(dynamodb, "old", DOWN, accepted_at_ms=START_MS),
        created_s=created_s,
    )
    if as_datetime:  # as a boto3 stream reader hands it on
        old["dynamodb"]["ApproximateCreationDateTime"] = datetime.fromtimestamp(created_s, UTC)
    assert stream.handle(batch(old), FakeContext(), runtime) == NO_FAILURES
    item = get_item(dynamodb, "old")
    assert item is not None
    assert item["status"] == "FAILED" and "maximum record age of 600 s" in item["error"]


def test_age_falls_back_to_the_accepted_time(
    make_runtime: Callable[..., Runtime], dynamodb: Any
) -> None:
    runtime = make_runtime(max_record_age_s=600, max_attempts=100)
    young = insert(dynamodb, "young", DOWN)
    old = stream_record(
        "INSERT", "old", image=put_pending(dynamodb, "old", DOWN, accepted_at_ms=START_MS - 599_000)
    )
    del old["dynamodb"]["ApproximateCreationDateTime"]
    assert stream.handle(batch(young), FakeContext(), runtime)["batchItemFailures"]
    assert stream.handle(batch(old), FakeContext(), runtime) == NO_FAILURES
    assert get_item(dynamodb, "old")["status"] == "FAILED"  # type: ignore[index]


def test_redelivery_after_success_counts_a_duplicate_and_does_not_process_again(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    record = insert(dynamodb, "d", OK)
    stream.handle(batch(record), FakeContext(), runtime)
    before = get_item(dynamodb, "d")
    clock.now += 10_000
    assert stream.handle(batch(record), FakeContext(), runtime) == NO_FAILURES
    assert stream.handle(batch(record), FakeContext(), runtime) == NO_FAILURES
    assert get_item(dynamodb, "d") == {**before, "duplicates": 2}  # type: ignore[dict-item]
    assert clock.sleeps == [0.02]  # the work ran once
    assert [line["outcome"] for line in logs] == ["succeeded", "duplicate", "duplicate"]


def test_redelivery_after_failure_counts_a_duplicate(runtime: Runtime, dynamodb: Any) -> None:
    record = insert(dynamodb, "f", '{"fail": "always"}')
    stream.handle(batch(record), None, runtime)
    stream.handle(batch(record), None, runtime)
    item = get_item(dynamodb, "f")
    assert item is not None
    assert (item["status"], item["attempts"], item["duplicates"]) == ("FAILED", 1, 1)


def test_vanished_item_is_skipped_and_not_recreated(
    runtime: Runtime, dynamodb: Any, logs: list[dict[str, Any]]
) -> None:
    record = insert(dynamodb, "v", OK)
    dynamodb.delete_item(TableName=TABLE, Key={"id": {"S": "v"}})
    after = insert(dynamodb, "after", OK)
    assert stream.handle(batch(record, after), None, runtime) == NO_FAILURES
    assert get_item(dynamodb, "v") is None
    assert get_item(dynamodb, "after")["status"] == "SUCCEEDED"  # type: ignore[index]
    assert logs[0]["outcome"] == "vanished"


def test_cold_start_only_in_the_first_invocation(runtime: Runtime, dynamodb: Any) -> None:
    first = batch(insert(dynamodb, "a", OK), insert(dynamodb, "b", OK))
    stream.handle(first, None, runtime)
    stream.handle(batch(insert(dynamodb, "c", OK)), None, runtime)
    cold = {item["id"]["S"]: item["cold_start"]["BOOL"] for item in all_items(dynamodb)}
    assert cold == {"a": True, "b": True, "c": False}


def test_dynamodb_errors_report_the_rest_of_the_batch(
    make_runtime: Callable[..., Runtime], dynamodb: Any, logs: list[dict[str, Any]]
) -> None:
    records = [insert(dynamodb, name, OK) for name in ("x", "y")]
    runtime = make_runtime(table_name="no-such-table")
    response = stream.handle(batch(*records), None, runtime)
    assert response == {"batchItemFailures": sequence_numbers(*records)}
    assert logs[-1]["outcome"] == "dynamodb_error"


def test_module_handler_reads_its_environment(
    monkeypatch: pytest.MonkeyPatch, dynamodb: Any
) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setattr(stream, "_runtime", None)
    assert stream.handler(batch(insert(dynamodb, "m", "{}")), FakeContext()) == NO_FAILURES
    assert get_item(dynamodb, "m")["status"] == "SUCCEEDED"  # type: ignore[index]


class DeadlineContext:
    """A context whose remaining time runs down with the fake clock."""

    def __init__(self, clock: FakeClock, deadline_ms: int) -> None:
        self.clock = clock
        self.deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - self.clock.now)


def test_nearly_out_of_time_hands_the_rest_back_but_always_makes_progress(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    slow = '{"work_ms": 1000}'
    records = [insert(dynamodb, name, slow) for name in ("one", "two", "three")]
    # 1.5 s left: below the early-stop threshold, yet the first record is still processed.
    context = DeadlineContext(clock, START_MS + 1500)
    response = stream.handle(batch(*records), context, runtime)
    assert response == {"batchItemFailures": sequence_numbers(*records[1:])}
    statuses = [get_item(dynamodb, name)["status"] for name in ("one", "two", "three")]  # type: ignore[index]
    assert statuses == ["SUCCEEDED", "PENDING", "PENDING"]
    assert get_item(dynamodb, "two")["attempts"] == 0  # type: ignore[index]
    assert logs[-1]["outcome"] == "deferred" and logs[-1]["deferredRecords"] == 2

    context = DeadlineContext(clock, clock.now + 10_000)
    assert stream.handle(batch(*records[1:]), context, runtime) == NO_FAILURES


def test_a_batch_reads_its_items_in_one_call_then_only_updates(
    runtime: Runtime, dynamodb: Any
) -> None:
    calls: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    dynamodb.meta.events.register("before-call.dynamodb", count)
    records = [insert(dynamodb, f"r{index}", OK) for index in range(5)]
    calls.clear()  # the inserts above are the test's own writes
    try:
        assert stream.handle(batch(*records), FakeContext(), runtime) == NO_FAILURES
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb", count)
    assert calls == ["BatchGetItem"] + ["UpdateItem"] * 5
    assert {get_item(dynamodb, f"r{index}")["status"] for index in range(5)} == {"SUCCEEDED"}  # type: ignore[index]


def test_keys_the_batch_read_left_unprocessed_are_read_one_by_one(
    runtime: Runtime, dynamodb: Any
) -> None:
    records = [insert(dynamodb, f"u{index}", OK) for index in range(3)]
    real_batch_get = dynamodb.batch_get_item

    def throttled_batch_get(**kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = real_batch_get(**kwargs)
        # DynamoDB leaves keys unprocessed when it throttles: pretend it did for the first one.
        first = kwargs["RequestItems"][TABLE]["Keys"][0]
        answer["Responses"][TABLE] = [
            item for item in answer["Responses"][TABLE] if item["id"] != first["id"]
        ]
        answer["UnprocessedKeys"] = {TABLE: {"Keys": [first]}}
        return answer

    dynamodb.batch_get_item = throttled_batch_get
    try:
        assert stream.handle(batch(*records), FakeContext(), runtime) == NO_FAILURES
    finally:
        del dynamodb.batch_get_item
    assert {get_item(dynamodb, f"u{index}")["status"] for index in range(3)} == {"SUCCEEDED"}  # type: ignore[index]
