"""Conformance of the local event source mapping, one test per Lambda behaviour.

Each test runs against real DynamoDB Local (its own table, so tests are independent) and a
stand-in function that records every event and answers as the test says.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.config import StackConfig
from stack.local.dynamodb.dynamodb_local import LOCAL_REGION
from stack.local.event_source_mapping.mapping import EventSourceMapping, MappingSettings
from stack.local.event_source_mapping.stream_reader import stage_arn
from tests.local.esm_support import (
    Answer,
    StandInFunction,
    create_stream_table,
    dynamodb_endpoint,
    ids,
    wait_until,
)

pytestmark = pytest.mark.local_stage

POLL_S = 0.05


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from dynamodb_endpoint(request)


class Harness:
    """A table, a stand-in function and a mapping between them (stopped at teardown)."""

    def __init__(self, endpoint: str, tmp_path: Path, *, ttl: bool = False) -> None:
        self.endpoint = endpoint
        self.client, self.table, self.stream_arn = create_stream_table(endpoint, ttl=ttl)
        self.destination_path = tmp_path / "failures.jsonl"
        self.function = StandInFunction()
        self.metrics: list[tuple[str, float]] = []
        self.mappings: list[EventSourceMapping] = []

    def emit(
        self,
        variant: str,
        function: str,
        metric: str,
        value: float,
        unit: str = "Count",
        **extra: Any,
    ) -> None:
        self.metrics.append((metric, value))

    def put(self, key: str, **attributes: Any) -> None:
        item = {"id": {"S": key}}
        for name, value in attributes.items():
            item[name] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
        self.client.put_item(TableName=self.table, Item=item)

    def start(
        self,
        *,
        answer: Callable[[list[dict[str, Any]], int], Answer] | None = None,
        starting_position: str = "TRIM_HORIZON",
        filter_patterns: Any = None,
        work_s: float = 0.0,
        **settings: Any,
    ) -> EventSourceMapping:
        if answer is not None:
            self.function.answer = answer
        self.function.work_s = work_s
        extra = {} if filter_patterns is None else {"filter_patterns": filter_patterns}
        mapping = EventSourceMapping(
            dynamodb_endpoint=self.endpoint,
            stream_arn=self.stream_arn,
            function=self.function,
            config=StackConfig(),
            failure_destination=self.destination_path,
            metrics=self,
            poll_interval_s=POLL_S,
            starting_position=starting_position,
            settings=MappingSettings(**settings),
            **extra,
        )
        mapping.start()
        self.mappings.append(mapping)
        return mapping

    def failures(self) -> list[dict[str, Any]]:
        return self.mappings[0].failure_destination.read() if self.mappings else []

    def close(self) -> None:
        for mapping in self.mappings:
            mapping.stop()
        self.client.delete_table(TableName=self.table)
        self.client.close()


@pytest.fixture
def harness(endpoint: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(endpoint, tmp_path)
    yield harness
    harness.close()


def fail_if(poison: set[str]) -> Callable[[list[dict[str, Any]], int], Answer]:
    """An answer that fails the whole invocation when the batch holds a poison record."""

    def answer(records: list[dict[str, Any]], number: int) -> Answer:
        if poison & set(ids(records)):
            return Answer("error", {"errorType": "Poison"}, "Poison")
        return Answer()

    return answer


def keys(count: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{index:03d}" for index in range(count)]


def test_batch_size_is_respected_and_order_kept(harness: Harness) -> None:
    for key in keys(25):
        harness.put(key)
    harness.start(batch_size=10)
    wait_until(lambda: len(harness.function.delivered_ids()) == 25, what="25 records")
    assert [len(call.records) for call in harness.function.calls] == [10, 10, 5]
    assert harness.function.delivered_ids() == keys(25)
    assert ("BatchSize", 10) in harness.metrics


def test_delivered_record_has_the_shape_lambda_delivers(harness: Harness) -> None:
    harness.put("a", payload="x", accepted_at_ms=int(time.time() * 1000))
    harness.start()
    wait_until(lambda: harness.function.calls, what="one invocation")
    record = harness.function.calls[0].records[0]
    assert record["eventName"] == "INSERT"
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    # As AWS names them: the stage's region, not DynamoDB Local's "ddblocal"; a 32-hex eventID.
    assert record["eventSourceARN"] == stage_arn(harness.stream_arn)
    assert ":ddblocal:" not in record["eventSourceARN"]
    assert record["awsRegion"] == LOCAL_REGION
    assert re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
    stream = record["dynamodb"]
    assert isinstance(stream["ApproximateCreationDateTime"], float)
    assert stream["Keys"] == {"id": {"S": "a"}}
    assert stream["NewImage"]["payload"] == {"S": "x"}  # DynamoDB JSON, not deserialized
    assert stream["StreamViewType"] == "NEW_IMAGE"
    assert stream["SequenceNumber"] and stream["SizeBytes"] > 0
    iterator_ages = [value for metric, value in harness.metrics if metric == "IteratorAge"]
    assert iterator_ages and 0 <= iterator_ages[0] < 10_000


def test_batching_window_waits_to_fill_a_batch(harness: Harness) -> None:
    mapping = harness.start(batch_size=100, batching_window_s=1.5)
    started = time.monotonic()
    harness.put("a")
    wait_until(lambda: mapping.polled_count == 1, what="first record read")
    harness.put("b")
    harness.put("c")
    wait_until(lambda: harness.function.calls, what="the windowed invocation")
    wait_until(lambda: mapping.polled_count == 3, what="all records read")
    call = harness.function.calls[0]
    assert call.ids == ["a", "b", "c"]
    assert call.at - started >= 1.4


def test_full_batch_goes_out_before_the_window_ends(harness: Harness) -> None:
    harness.start(batch_size=3, batching_window_s=30)
    started = time.monotonic()
    for key in ("a", "b", "c"):
        harness.put(key)
    wait_until(lambda: harness.function.calls, timeout_s=10, what="a full batch")
    assert harness.function.calls[0].ids == ["a", "b", "c"]
    assert harness.function.calls[0].at - started < 10


def test_retries_are_counted_then_the_batch_goes_to_the_destination(harness: Harness) -> None:
    harness.put("poison")
    harness.start(answer=fail_if({"poison"}), retry_attempts=2, bisect_on_error=False)
    wait_until(harness.failures, what="a failure destination record")
    harness.put("after")
    wait_until(lambda: "after" in harness.function.delivered_ids(), what="the shard moving on")
    assert harness.function.delivered_ids().count("poison") == 3  # MaximumRetryAttempts + 1
    (failure,) = harness.failures()
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    assert failure["requestContext"]["functionArn"] == harness.function.arn
    assert failure["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert failure["version"] == "1.0"
    info = failure["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == harness.stream_arn
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert "Records" not in failure and "poison" not in str(failure)  # metadata, never records
    assert ("OnFailureDestinationDeliveredEventCount", 1) in harness.metrics


def test_bisect_isolates_a_poison_record(harness: Harness) -> None:
    records = keys(8)
    for key in records:
        harness.put(key)
    harness.start(answer=fail_if({"r005"}), batch_size=8, retry_attempts=1, bisect_on_error=True)
    good = [key for key in records if key != "r005"]

    def succeeded() -> list[str]:
        calls = harness.function.calls
        return [key for call in calls if "r005" not in call.ids for key in call.ids]

    wait_until(lambda: succeeded() == good, what="every good record, once and in order")
    (failure,) = wait_until(harness.failures, what="the poison record parked")
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert [call.ids for call in harness.function.calls].count(["r005"]) == 2  # retry_attempts+1


def test_partial_batch_failure_replays_from_the_lowest_failed_sequence_number(
    harness: Harness,
) -> None:
    for key in keys(5):
        harness.put(key)

    def answer(records: list[dict[str, Any]], number: int) -> Answer:
        if number == 0:
            sequence = {
                ids([record])[0]: record["dynamodb"]["SequenceNumber"] for record in records
            }
            failures = [{"itemIdentifier": sequence["r003"]}, {"itemIdentifier": sequence["r001"]}]
            return Answer(payload={"batchItemFailures": failures})
        return Answer(payload={"batchItemFailures": []})

    harness.start(answer=answer, batch_size=10, bisect_on_error=True)
    wait_until(lambda: len(harness.function.calls) >= 2, what="the replay")
    assert harness.function.calls[0].ids == keys(5)
    assert harness.function.calls[1].ids == ["r001", "r002", "r003", "r004"]


@pytest.mark.parametrize(
    "failures",
    [
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"itemIdentifier": "999999999999999999999"}],
        [{"itemId": "wrong key name"}],
        "not a list",
    ],
    ids=["empty", "null", "unknown", "bad-key", "malformed"],
)
def test_invalid_item_identifier_fails_the_whole_batch(harness: Harness, failures: Any) -> None:
    for key in keys(3):
        harness.put(key)

    def answer(records: list[dict[str, Any]], number: int) -> Answer:
        return Answer(payload={"batchItemFailures": failures if number == 0 else []})

    harness.start(answer=answer, batch_size=10, bisect_on_error=False)
    wait_until(lambda: len(harness.function.calls) >= 2, what="the retry")
    assert harness.function.calls[1].ids == keys(3)


def test_records_older_than_the_maximum_age_are_never_processed(harness: Harness) -> None:
    old_ms = int(time.time() * 1000) - 600_000
    harness.put("old", accepted_at_ms=old_ms)
    harness.put("fresh", accepted_at_ms=int(time.time() * 1000))
    harness.start(max_record_age_s=60)
    wait_until(lambda: harness.function.calls, what="the fresh record")
    assert harness.function.delivered_ids() == ["fresh"]
    (failure,) = wait_until(harness.failures, what="the old record parked")
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] == 1  # as AWS recorded it
    assert "responseContext" not in failure  # discarded before any invocation


def test_a_failing_record_expires_to_the_destination(harness: Harness) -> None:
    harness.put("poison", accepted_at_ms=int(time.time() * 1000))
    harness.start(answer=fail_if({"poison"}), max_record_age_s=1.0, retry_attempts=-1)
    (failure,) = wait_until(harness.failures, what="the record expiring")
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["requestContext"]["approximateInvokeCount"] >= 2
    assert "responseContext" not in failure  # AWS recorded none for an expired batch


def test_parallelization_keeps_per_item_order(harness: Harness) -> None:
    items = keys(12, "k")
    for version in range(4):
        for key in items:
            harness.put(key, version=version)
    harness.start(filter_patterns=(), batch_size=3, parallelization_factor=4, work_s=0.02)
    wait_until(lambda: len(harness.function.delivered_ids()) == 48, what="48 records")
    seen: dict[str, list[int]] = {}
    for call in harness.function.calls:
        for record in call.records:
            version = int(record["dynamodb"]["NewImage"]["version"]["N"])
            seen.setdefault(ids([record])[0], []).append(version)
    assert all(versions == [0, 1, 2, 3] for versions in seen.values()), seen
    assert harness.function.max_concurrent >= 2  # lanes really ran side by side


def test_only_inserts_are_delivered(harness: Harness) -> None:
    mapping = harness.start()
    harness.put("a")
    harness.client.update_item(
        TableName=harness.table,
        Key={"id": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "SUCCEEDED"}},
    )
    harness.client.delete_item(TableName=harness.table, Key={"id": {"S": "a"}})
    harness.put("b")
    wait_until(lambda: mapping.polled_count == 4, what="all four stream records read")
    wait_until(lambda: len(harness.function.delivered_ids()) == 2, what="both inserts")
    delivered = [record for call in harness.function.calls for record in call.records]
    assert [record["eventName"] for record in delivered] == ["INSERT", "INSERT"]
    assert mapping.filtered_out_count == 2  # the MODIFY and the REMOVE


def test_ttl_deletions_are_not_delivered(endpoint: str, tmp_path: Path) -> None:
    harness = Harness(endpoint, tmp_path, ttl=True)
    try:
        mapping = harness.start(filter_patterns=None)
        harness.put("expired", ttl=int(time.time()) - 60)
        # DynamoDB Local's TTL sweeper deletes expired items within about a second here.
        wait_until(lambda: mapping.polled_count == 2, timeout_s=30, what="the TTL deletion")
        assert harness.function.delivered_ids() == ["expired"]
        assert mapping.filtered_out_count == 1
    finally:
        harness.close()


def test_throttles_are_retried_without_counting(harness: Harness) -> None:
    harness.put("a")

    def answer(records: list[dict[str, Any]], number: int) -> Answer:
        return Answer("throttled") if number < 3 else Answer()

    harness.start(answer=answer, retry_attempts=0)
    wait_until(lambda: len(harness.function.calls) == 4, what="delivery after throttles")
    assert harness.failures() == []


def test_timeouts_are_function_errors(harness: Harness) -> None:
    harness.put("slow")

    def answer(records: list[dict[str, Any]], number: int) -> Answer:
        return Answer("timeout", None, "Sandbox.Timedout")

    harness.start(answer=answer, retry_attempts=1)
    (failure,) = wait_until(harness.failures, what="the timed-out batch parked")
    assert len(harness.function.calls) == 2
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["responseContext"]["functionError"] == "Unhandled"


def test_latest_skips_records_written_before_start(harness: Harness) -> None:
    harness.put("before")
    harness.start(starting_position="LATEST")
    harness.put("after")
    wait_until(lambda: harness.function.calls, what="the new record")
    assert harness.function.delivered_ids() == ["after"]


def test_stop_returns_promptly_and_delivers_nothing_more(harness: Harness) -> None:
    mapping = harness.start()
    harness.put("a")
    wait_until(lambda: harness.function.calls, what="the first delivery")
    started = time.monotonic()
    mapping.stop()
    assert time.monotonic() - started < 1.0
    harness.put("b")
    calls = len(harness.function.calls)
    # Nothing may arrive in the next few poll intervals (a negative check needs a fixed wait).
    quiet_until = time.monotonic() + 6 * POLL_S
    while time.monotonic() < quiet_until:
        assert len(harness.function.calls) == calls
        threading.Event().wait(POLL_S)
