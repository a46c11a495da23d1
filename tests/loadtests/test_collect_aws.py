"""AWS collection against moto: table scan, SQS destination, stream resolution, CloudWatch."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from asyncbench.errors import StackNotDeployedError
from loadtests import collect, collect_aws
from loadtests.collect import TrialWindow, collect_trial
from loadtests.collect_aws import AwsStageSide, metric_queries
from loadtests.run import server_part_writer
from reports.schema import PARKED, SERVER, conform, part_paths, read_table
from stack.endpoints import Endpoints, VariantEndpoint

REGION = "us-east-1"
RUN = "run-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # botocore sends stream calls to account-based endpoints moto does not route yet.
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    with mock_aws():
        yield


def _table(name: str) -> str:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return str(dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"])


def _put(table: str, request_id: str, status: str, run_id: str = RUN, **extra: Any) -> None:
    item = {
        "id": {"S": request_id},
        "run_id": {"S": run_id},
        "status": {"S": status},
        "attempts": {"N": "1"},
        "duplicates": {"N": "0"},
        "accepted_at_ms": {"N": str(int(time.time() * 1000))},
        "request": {"S": '{"payload": "h\u00e9"}'},
        **extra,
    }
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=table, Item=item)


def _endpoints(queue_url: str) -> Endpoints:
    api = "https://abc.execute-api.us-east-1.amazonaws.com"
    return Endpoints(
        target="aws",
        region=REGION,
        variants={
            "direct": VariantEndpoint(f"{api}/direct", "tbl-direct"),
            "storage_first": VariantEndpoint(f"{api}/storage-first", "tbl-sf", queue_url),
        },
        extra={
            "aws_resources": {
                "direct": {"function_name": "fn-direct", "api_name": "api-direct"},
                "storage_first": {"function_name": "fn-stream", "api_name": "api-sf"},
            }
        },
    )


def _destination_record(stream_arn: str, shard_id: str, start: str, end: str) -> dict[str, Any]:
    """The shape AWS sends for a DynamoDB stream event source mapping's on-failure destination."""
    return {
        "requestContext": {
            "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:fn-stream",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 21,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": ""},
        "version": "1.0",
        "timestamp": "2026-11-28T14:22:33.568Z",
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2026-11-28T14:22:30Z",
            "approximateArrivalOfLastRecord": "2026-11-28T14:22:30Z",
            "batchSize": 1,
            "streamArn": stream_arn,
        },
    }


def _sequence_of(stream_arn: str, request_id: str) -> tuple[str, str]:
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    for record in streams.get_records(ShardIterator=iterator)["Records"]:
        if record["dynamodb"]["Keys"]["id"]["S"] == request_id:
            return shard["ShardId"], record["dynamodb"]["SequenceNumber"]
    raise AssertionError(f"{request_id} not on the stream")


def test_collects_items_parked_records_and_metrics(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _table("tbl-direct")
    stream_arn = _table("tbl-sf")
    queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="dlq")["QueueUrl"]
    _put("tbl-sf", "done", "SUCCEEDED", processed_at_ms={"N": "1"}, cold_start={"BOOL": True})
    _put("tbl-sf", "stuck", "PENDING")
    _put("tbl-sf", "poisoned", "PENDING")
    _put("tbl-sf", "other-run", "PENDING", run_id="run-0")
    for index in range(30):  # more than one scan page is not guaranteed by moto; many items
        _put("tbl-sf", f"bulk-{index}", "SUCCEEDED")
    shard_id, sequence = _sequence_of(stream_arn, "poisoned")
    sqs = boto3.client("sqs", region_name=REGION)
    record = _destination_record(stream_arn, shard_id, sequence, sequence)
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
    # moto computes no percentiles (and fails serializing them): fetch the plain statistics.
    plain_stats = tuple(
        dataclasses.replace(spec, stats=tuple(s for s in spec.stats if not s.startswith("p")))
        for spec in collect_aws.CLOUDWATCH_METRICS
    )
    monkeypatch.setattr(collect_aws, "CLOUDWATCH_METRICS", plain_stats)
    side = AwsStageSide(_endpoints(queue_url), RUN, long_poll_s=1)
    started = time.time() * 1000 - 5_000
    window = TrialWindow(RUN, 3, "storage_first", started, time.time() * 1000)
    client = pd.DataFrame(
        {
            "trial": [3, 3, 3],
            "request_id": ["done", "stuck", "poisoned"],
            "outcome": ["accepted"] * 3,
        }
    )
    polls: list[int] = []
    side.begin_trial()
    result = collect_trial(
        side, window, client, timeout_s=2.5, on_poll=lambda left, _: polls.append(left)
    )

    assert not result.settled
    assert result.unfinished == 1  # "stuck": still PENDING and not parked; recorded, not dropped
    assert polls[-1] == 1 and len(polls) >= 2
    server = result.server.set_index("request_id")
    assert set(server.index) == {"done", "stuck", "poisoned"} | {f"bulk-{i}" for i in range(30)}
    assert server.loc["stuck", "status"] == "PENDING"
    assert server.loc["done", "cold_start"] == True  # noqa: E712 - object column
    assert server.loc["done", "request_bytes"] == len('{"payload": "hé"}'.encode())
    assert set(server["trial"]) == {3}
    conform(result.server, SERVER)

    assert list(result.parked["request_id"]) == ["poisoned"]
    assert result.parked["condition"].iloc[0] == "RetryAttemptsExhausted"
    assert result.parked["approximate_invoke_count"].iloc[0] == 21
    conform(result.parked, PARKED)
    # Read but not deleted until its rows are written (the next trial's begin, or the run's end).
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    side.begin_trial()
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"

    # Metrics are not read per trial on AWS (they arrive late): finish_run reads them once.
    assert result.metrics.empty


def test_unresolvable_destination_record_is_kept_without_request_id(aws: None) -> None:
    _table("tbl-direct")
    stream_arn = _table("tbl-sf")
    queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="dlq")["QueueUrl"]
    record = _destination_record(stream_arn, "shardId-unknown", "999", "1000")
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=queue_url, MessageBody=json.dumps(record)
    )
    side = AwsStageSide(_endpoints(queue_url), RUN, long_poll_s=1)
    now_ms = time.time() * 1000
    window = TrialWindow(RUN, 1, "storage_first", now_ms - 1000, now_ms)
    result = collect_trial(
        side, window, pd.DataFrame(columns=["trial", "request_id", "outcome"]), timeout_s=0
    )
    assert result.settled and result.unfinished == 0
    assert len(result.parked) == 1 and result.parked["request_id"].isna().all()
    assert (
        json.loads(result.parked["raw"].iloc[0])["DDBStreamBatchInfo"]["startSequenceNumber"]
        == "999"
    )


def test_metric_queries_skip_resources_without_names() -> None:
    endpoints = _endpoints("https://sqs/queue")
    queries, meaning = metric_queries(endpoints, "storage_first")
    names = {spec.name for spec, _, _ in meaning.values()}
    assert {"Throttles", "IteratorAge", "Latency", "5XXError", "ConsumedReadCapacityUnits"} <= names
    # Per invocation from the logs instead (exact per trial): never averaged per minute.
    assert not {"Invocations", "Duration", "Errors"} & names
    stages = {
        dimension["Value"]
        for query in queries
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "Stage"
    }
    assert stages == {"storage-first"}
    direct_names = {spec.name for spec, _, _ in metric_queries(endpoints, "direct")[1].values()}
    assert "IteratorAge" not in direct_names
    bare = Endpoints(target="aws", region=REGION, variants=endpoints.variants)
    bare_names = {spec.name for spec, _, _ in metric_queries(bare, "direct")[1].values()}
    assert bare_names == {
        "ConsumedWriteCapacityUnits",
        "ConsumedReadCapacityUnits",
        "WriteThrottleEvents",
        "ReadThrottleEvents",
    }


def test_check_names_a_missing_table(aws: None) -> None:
    _table("tbl-direct")
    side = AwsStageSide(_endpoints("https://sqs/queue"), RUN)
    with pytest.raises(StackNotDeployedError, match=r"tbl-sf .*asyncbench deploy"):
        side.check()


def test_parked_messages_that_arrive_late_are_collected(aws: None) -> None:
    """The failure destination's message arrives after collection began (AWS writes it when
    the retries of the batch are exhausted): collection waits for it, by long polling."""
    _table("tbl-direct")
    stream_arn = _table("tbl-sf")
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    _put("tbl-sf", "late", "PENDING")
    shard_id, sequence = _sequence_of(stream_arn, "late")
    side = AwsStageSide(_endpoints(queue_url), RUN, long_poll_s=1)
    now_ms = time.time() * 1000
    window = TrialWindow(RUN, 1, "storage_first", now_ms - 1000, now_ms)
    client = pd.DataFrame({"trial": [1], "request_id": ["late"], "outcome": ["accepted"]})
    polls: list[int] = []

    def on_poll(left: int, _: float) -> None:
        polls.append(left)
        if len(polls) == 2:  # parked only after two polls found the item PENDING
            record = _destination_record(stream_arn, shard_id, sequence, sequence)
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))

    side.begin_trial()
    result = collect_trial(side, window, client, timeout_s=20, on_poll=on_poll)
    assert polls[:2] == [1, 1] and polls[-1] == 0
    assert result.settled and result.unfinished == 0
    assert list(result.parked["request_id"]) == ["late"]
    assert result.server.set_index("request_id").loc["late", "status"] == "PENDING"


class _FalseEmptyQueue:
    """SQS as short polling can answer: an empty receive while a message waits on the queue."""

    def __init__(self) -> None:
        self.receives: list[int] = []
        self.deleted: list[str] = []
        self.waiting = [{"Body": json.dumps({"n": 1}), "ReceiptHandle": "h1"}]

    def receive_message(self, **arguments: Any) -> dict[str, Any]:
        self.receives.append(arguments["WaitTimeSeconds"])
        if len(self.receives) == 1:
            return {}  # the false empty
        messages, self.waiting = self.waiting, []
        return {"Messages": messages} if messages else {}

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        visible = len(self.waiting)
        in_flight = 1 - visible - len(self.deleted)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            }
        }

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> None:
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]


def test_an_empty_receive_with_messages_on_the_queue_does_not_end_the_read(aws: None) -> None:
    side = AwsStageSide(_endpoints("https://sqs/queue"), RUN, long_poll_s=3)
    fake = _FalseEmptyQueue()
    side.sqs = fake
    assert side.new_parked_records() == [{"n": 1}]
    assert fake.receives == [3, 3, 3]  # long polls only; the last one empty with counts at 0
    assert fake.deleted == []  # rows not written yet
    side.acknowledge()
    assert fake.deleted == ["h1"]


def test_items_are_read_page_by_page_with_a_progress_line(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _table("tbl-sf")
    for number in range(23):
        _put("tbl-sf", f"id-{number:02d}", "SUCCEEDED")
    _put("tbl-sf", "other-run", "SUCCEEDED", run_id="run-2")
    monkeypatch.setattr(collect_aws, "SCAN_PROGRESS_S", 0.0)
    lines: list[str] = []
    side = AwsStageSide(_endpoints("https://sqs/queue"), RUN, page_size=5, progress=lines.append)
    calls: list[int] = []
    scan = side.dynamodb.scan
    monkeypatch.setattr(
        side.dynamodb, "scan", lambda **kw: calls.append(kw.get("Limit")) or scan(**kw)
    )
    items = side.items("storage_first")
    assert not calls  # nothing read before the collector asks for the items
    first = next(iter(items))
    assert first["run_id"] == RUN and len(calls) == 1
    rest = list(items)
    assert sorted(item["id"] for item in [first, *rest]) == [f"id-{n:02d}" for n in range(23)]
    assert len(calls) == 5 and set(calls) == {5}  # 24 items (one of another run) in pages of 5
    assert lines[-1].startswith("scanning tbl-sf: 23 items of the run in 5 pages")


def test_a_large_table_is_collected_into_server_parts_page_by_page(
    aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _table("tbl-sf")
    for number in range(57):
        _put("tbl-sf", f"id-{number:02d}", "SUCCEEDED")
    _put("tbl-sf", "other-run", "SUCCEEDED", run_id="run-2")
    monkeypatch.setattr(collect_aws, "SCAN_PROGRESS_S", 0.0)
    monkeypatch.setattr(collect, "PART_PROGRESS_S", 0.0)
    lines: list[str] = []
    side = AwsStageSide(_endpoints(""), RUN, page_size=4, progress=lines.append)
    calls: list[int] = []
    scan = side.dynamodb.scan
    monkeypatch.setattr(
        side.dynamodb, "scan", lambda **kw: calls.append(kw.get("Limit")) or scan(**kw)
    )
    window = TrialWindow(RUN, 1, "storage_first", time.time() * 1000 - 60_000, time.time() * 1000)
    client = pd.DataFrame(
        {"trial": 1, "request_id": [f"id-{n:02d}" for n in range(57)], "outcome": "accepted"}
    )
    result = collect_trial(
        side, window, client, timeout_s=5, server_sink=server_part_writer(tmp_path, 1),
        part_rows=10, progress=lines.append,
    )  # fmt: skip

    assert result.settled and result.unfinished == 0
    assert len(calls) == 15 and set(calls) == {4}  # 58 items in pages of 4, read once
    parts = part_paths(tmp_path, SERVER)
    assert [path.name for path in parts] == [f"trial-001-{n:04d}.parquet" for n in range(1, 7)]
    server = read_table(tmp_path, SERVER)
    assert sorted(server["request_id"]) == [f"id-{n:02d}" for n in range(57)]  # each once
    assert result.items == 57 and result.server_parts == 6 and result.server.empty
    assert "scanning tbl-sf: 57 items of the run in 15 pages, 0 s" in lines
    assert "collect: trial 1 storage_first: 50 items read into 5 parts so far" in lines
