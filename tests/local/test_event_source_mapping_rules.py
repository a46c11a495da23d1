"""The event source mapping's pure rules: filter patterns, batch responses, failure records."""

from __future__ import annotations

import time
from typing import Any

import pytest

from asyncbench.errors import ConfigError, LocalStageError
from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.local.event_source_mapping.batch_outcome import interpret
from stack.local.event_source_mapping.event_filter import (
    matches_any,
    matches_pattern,
    validate_patterns,
)
from stack.local.event_source_mapping.failure_destination import FailureDestination, failure_record
from stack.local.event_source_mapping.mapping import EventSourceMapping
from stack.local.event_source_mapping.stream_reader import Shard, to_lambda_record
from tests.local.esm_support import StandInFunction, wait_until

ARN = "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-01-01T00:00:00.000"


def record(name: str = "INSERT", sequence: str = "1", **image: Any) -> dict[str, Any]:
    return {
        "eventName": name,
        "dynamodb": {
            "ApproximateCreationDateTime": 1_700_000_000.0,
            "Keys": {"id": {"S": "a"}},
            "NewImage": {"id": {"S": "a"}, **image},
            "SequenceNumber": sequence,
        },
    }


@pytest.mark.parametrize(
    ("name", "delivered"), [("INSERT", True), ("MODIFY", False), ("REMOVE", False)]
)
def test_the_stacks_filter_passes_only_inserts(name: str, delivered: bool) -> None:
    assert matches_any([STREAM_FILTER_PATTERN], record(name)) is delivered


def test_no_patterns_means_no_filtering() -> None:
    assert matches_any([], record("REMOVE"))


def test_any_pattern_may_match() -> None:
    patterns = [{"eventName": ["MODIFY"]}, {"eventName": ["INSERT"]}]
    assert matches_any(patterns, record("INSERT"))


def test_nested_keys_and_comparisons() -> None:
    item = record(status={"S": "PENDING"}, attempts={"N": "3"})
    nested = {"dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}}}
    assert matches_pattern(nested, item)
    assert not matches_pattern({"dynamodb": {"NewImage": {"status": {"S": ["FAILED"]}}}}, item)
    assert matches_pattern({"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "PEN"}]}}}}, item)
    assert matches_pattern({"userIdentity": [{"exists": False}]}, item)
    assert not matches_pattern({"userIdentity": [{"exists": True}]}, item)
    assert matches_pattern({"eventName": [{"anything-but": ["REMOVE"]}]}, item)
    assert matches_pattern({"eventName": [{"equals-ignore-case": "insert"}]}, item)
    assert not matches_pattern({"missing": ["x"]}, item)


def test_numeric_rule_on_numbers() -> None:
    assert matches_pattern({"size": [{"numeric": [">", 0, "<=", 5]}]}, {"size": 5})
    assert not matches_pattern({"size": [{"numeric": [">", 0, "<=", 5]}]}, {"size": 6})


def test_a_bad_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="eventName"):
        matches_pattern({"eventName": "INSERT"}, record())


def test_exists_false_delivers_a_field_holding_an_object() -> None:
    """AWS recorded: `exists` speaks of leaf values, so an object field does not "exist"."""
    pattern = {"dynamodb": {"NewImage": {"k": [{"exists": False}]}}}
    assert matches_pattern(pattern, record(k={"M": {"x": {"S": "y"}}}))
    assert matches_pattern(pattern, record())
    leaf = {"k": [{"exists": False}]}
    assert not matches_pattern(leaf, {"k": "value"})
    assert matches_pattern(leaf, {"k": {"nested": "object"}})


@pytest.mark.parametrize(
    "pattern",
    [
        {"eventName": "INSERT"},
        {"eventName": []},
        {"eventName": [{"prefix": 1}]},
        {"eventName": [{"exists": "yes"}]},
        {"eventName": [{"wildcard": "I*"}]},
        {"n": [{"numeric": [">", "a"]}]},
        {},
    ],
)
def test_an_invalid_pattern_is_refused_when_the_mapping_is_created(
    pattern: dict[str, Any], tmp_path: Any
) -> None:
    with pytest.raises(ConfigError, match="Invalid filter pattern definition"):
        validate_patterns([pattern])
    with pytest.raises(ConfigError, match="Invalid filter pattern definition"):
        EventSourceMapping(
            dynamodb_endpoint="http://127.0.0.1:9",
            stream_arn=ARN,
            function=StandInFunction(),
            config=StackConfig(),
            failure_destination=tmp_path / "failures.jsonl",
            filter_patterns=[pattern],
        )
    validate_patterns([STREAM_FILTER_PATTERN, {"n": [{"numeric": [">", 0, "<=", 5]}]}])


BATCH = [record(sequence="10"), record(sequence="20"), record(sequence="30")]


@pytest.mark.parametrize(
    # `[]` too: AWS recorded it as success (one invocation, nothing retried).
    "payload",
    [None, {}, [], {"batchItemFailures": None}, {"batchItemFailures": []}],
)
def test_empty_responses_are_complete_success(payload: Any) -> None:
    outcome = interpret("ok", payload, None, BATCH, report_batch_item_failures=True)
    assert outcome.kind == "success"


def test_checkpoint_at_the_lowest_failed_sequence_number() -> None:
    payload = {"batchItemFailures": [{"itemIdentifier": "30"}, {"itemIdentifier": "20"}]}
    outcome = interpret("ok", payload, None, BATCH, report_batch_item_failures=True)
    assert (outcome.kind, outcome.failed_from) == ("partial", 1)


@pytest.mark.parametrize(
    "payload",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": "99"}]},
        {"batchItemFailures": [{"ItemIdentifier": "10"}]},
        {"batchItemFailures": "10"},
        ["10"],
    ],
)
def test_invalid_responses_fail_the_whole_batch(payload: Any) -> None:
    outcome = interpret("ok", payload, None, BATCH, report_batch_item_failures=True)
    assert outcome.kind == "failure"


def test_responses_are_ignored_without_report_batch_item_failures() -> None:
    payload = {"batchItemFailures": [{"itemIdentifier": "10"}]}
    assert interpret("ok", payload, None, BATCH, report_batch_item_failures=False).kind == "success"


@pytest.mark.parametrize(
    ("status", "kind"), [("error", "failure"), ("timeout", "failure"), ("throttled", "throttled")]
)
def test_invoke_failures(status: str, kind: str) -> None:
    assert interpret(status, None, "X", BATCH, report_batch_item_failures=True).kind == kind


def test_ttl_deletion_becomes_a_remove_record_from_the_service() -> None:
    raw = {"eventName": "UNKNOWN_TO_SDK_VERSION", "eventVersion": "1.1", "dynamodb": {}}
    converted = to_lambda_record(raw, ARN)
    assert converted["eventName"] == "REMOVE"
    assert converted["userIdentity"]["principalId"] == "dynamodb.amazonaws.com"
    assert converted["eventSourceARN"] == ARN.replace(":ddblocal:", ":local:")
    assert not matches_any([STREAM_FILTER_PATTERN], converted)


def test_failure_record_carries_batch_metadata_only(tmp_path: Any) -> None:
    batch = [record(sequence="10", secret={"S": "body"}), record(sequence="30")]
    result = failure_record(
        records=batch,
        shard_id="shard-1",
        stream_arn=ARN,
        function_arn="arn:fn",
        condition="RetryAttemptsExhausted",
        approximate_invoke_count=3,
        function_error="Unhandled",
        status_code=200,
        now_s=1_700_000_001.5,
    )
    assert result["timestamp"] == "2023-11-14T22:13:21.500Z"
    assert result["DDBStreamBatchInfo"] == {
        "shardId": "shard-1",
        "startSequenceNumber": "10",
        "endSequenceNumber": "30",
        "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20Z",
        "approximateArrivalOfLastRecord": "2023-11-14T22:13:20Z",
        "batchSize": 2,
        "streamArn": ARN,
    }
    assert "body" not in str(result)
    destination = FailureDestination(tmp_path / "sub" / "failures.jsonl")
    destination.send(result)
    destination.send(result)
    assert destination.read() == [result, result]


class FakeStreams:
    """A closed parent shard and its open child, as DescribeStream shows a shard roll-over."""

    def __init__(self) -> None:
        fresh = [record(sequence=number) for number in ("100", "101", "200")]
        for item in fresh:  # recent, so MaximumRecordAge does not park them
            item["dynamodb"]["ApproximateCreationDateTime"] = time.time()
        self.shards = [
            Shard("child", "parent", "200", None),  # listed first: lineage must still hold
            Shard("parent", None, "100", "199"),
        ]
        self.pages = {
            "parent": [(fresh[:2], "parent:1"), ([], None)],
            "child": [(fresh[2:], "child:1")],
        }

    def describe_shards(self, stream_arn: str) -> list[Shard]:
        return self.shards

    def shard_iterator(self, stream_arn: str, shard_id: str, kind: str, seq: Any = None) -> str:
        return f"{shard_id}:0"

    def get_records(self, iterator: str, limit: int = 1000) -> tuple[list[Any], str | None]:
        shard, _ = iterator.split(":")
        pages = self.pages[shard]
        if pages:
            return pages.pop(0)
        return [], f"{shard}:9"

    def close_thread_connection(self) -> None: ...

    def close(self) -> None: ...


def test_parent_shard_is_processed_before_its_child(tmp_path: Any) -> None:
    function = StandInFunction()
    mapping = EventSourceMapping(
        dynamodb_endpoint="http://127.0.0.1:9",
        stream_arn=ARN,
        function=function,
        config=StackConfig(),
        failure_destination=tmp_path / "failures.jsonl",
        poll_interval_s=0.01,
        discovery_interval_s=0.01,
    )
    mapping._client = FakeStreams()  # type: ignore[assignment]
    with mapping:
        wait_until(lambda: len(function.calls) == 2, what="both shards delivered")
    sequences = [
        [record["dynamodb"]["SequenceNumber"] for record in call.records] for call in function.calls
    ]
    assert sequences == [["100", "101"], ["200"]]


def test_a_second_mapping_of_the_same_function_and_stream_is_refused(tmp_path: Any) -> None:
    """AWS answers 409 ResourceConflictException; the first mapping's stop frees the pair."""

    def mapping() -> EventSourceMapping:
        created = EventSourceMapping(
            dynamodb_endpoint="http://127.0.0.1:9",
            stream_arn=ARN,
            function=StandInFunction(),
            config=StackConfig(),
            failure_destination=tmp_path / "failures.jsonl",
            poll_interval_s=0.01,
            discovery_interval_s=0.01,
        )
        created._client = FakeStreams()  # type: ignore[assignment]
        return created

    with mapping(), pytest.raises(LocalStageError, match="ResourceConflictException"):
        mapping().start()
    with mapping():  # the first one stopped: the pair is free again
        pass


def test_failure_record_has_a_null_function_error_when_the_function_returned() -> None:
    """AWS recorded ``responseContext.functionError: null`` for a batch the function returned
    normally for (a partial or malformed response)."""
    result = failure_record(
        records=[record(sequence="10")],
        shard_id="shard-1",
        stream_arn=ARN,
        function_arn="arn:fn",
        condition="RetryAttemptsExhausted",
        approximate_invoke_count=2,
        function_error=None,
        status_code=200,
        now_s=1_700_000_001.5,
    )
    assert result["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": None,
    }
