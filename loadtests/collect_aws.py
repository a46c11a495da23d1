"""The AWS side of a run: DynamoDB tables and streams, the SQS failure destination, CloudWatch.

Names the endpoints file does not hold directly come from its ``aws_resources`` extra, written
by ``asyncbench deploy`` (``{variant: {"function_name", "api_name", "stage", ...}}``). A metric
whose resource name is unknown is skipped, not guessed. Without a recorded stage, the API's
stage is the last path segment of the variant's base URL ("direct", "storage-first").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError, NoCredentialsError

from asyncbench.errors import StackNotDeployedError
from loadtests.collect_dynamodb import resolve_parked_record, scan_run_items
from stack.endpoints import Endpoints
from stack.outputs import AWS_RESOURCES_KEY

__all__ = ["CLOUDWATCH_METRICS", "AwsStageSide", "MetricSpec", "metric_queries"]

PERIOD_S = 60  # AWS service metrics are published per minute
MAX_WINDOW_S = 6 * 3600
# SQS long polling (1-20 s; 0 would be short polling, which samples a subset of the queue's
# servers and returns false empties when the queue holds few messages: exactly the parked case).
DEFAULT_LONG_POLL_S = 5
# How long one read of the queue may go on while it is not yet empty.
SQS_DRAIN_DEADLINE_S = 60.0
# Parked messages stay invisible to other readers until their rows are written and they are
# deleted; if the run dies first they reappear after this and the next collection reads them.
PARKED_VISIBILITY_S = 3600


@dataclass(frozen=True)
class MetricSpec:
    """One CloudWatch metric to fetch: where it lives, which statistics, its unit."""

    namespace: str
    name: str
    resource: str
    """'function', 'api' or 'table': which of the variant's resources its dimensions name."""
    stats: tuple[str, ...]
    unit: str
    variants: tuple[str, ...] = ("direct", "storage_first")


CLOUDWATCH_METRICS = (
    MetricSpec("AWS/Lambda", "Invocations", "function", ("Sum",), "Count"),
    MetricSpec(
        "AWS/Lambda", "Duration", "function", ("Average", "p50", "p99", "Maximum"), "Milliseconds"
    ),
    MetricSpec("AWS/Lambda", "Errors", "function", ("Sum",), "Count"),
    MetricSpec("AWS/Lambda", "Throttles", "function", ("Sum",), "Count"),
    MetricSpec("AWS/Lambda", "ConcurrentExecutions", "function", ("Maximum",), "Count"),
    MetricSpec(
        "AWS/Lambda", "IteratorAge", "function", ("Average", "Maximum"), "Milliseconds",
        ("storage_first",),
    ),
    MetricSpec("AWS/ApiGateway", "Count", "api", ("Sum",), "Count"),
    MetricSpec("AWS/ApiGateway", "Latency", "api", ("Average", "p50", "p99"), "Milliseconds"),
    MetricSpec("AWS/ApiGateway", "IntegrationLatency", "api", ("Average", "p99"), "Milliseconds"),
    MetricSpec("AWS/ApiGateway", "4XXError", "api", ("Sum",), "Count"),
    MetricSpec("AWS/ApiGateway", "5XXError", "api", ("Sum",), "Count"),
    MetricSpec("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "table", ("Sum",), "Count"),
    MetricSpec("AWS/DynamoDB", "WriteThrottleEvents", "table", ("Sum",), "Count"),
)  # fmt: skip


def _parse_body(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return {"unparsed": body}
    return value if isinstance(value, dict) else {"unparsed": value}


def _dimensions(spec: MetricSpec, endpoints: Endpoints, variant: str) -> list[dict[str, str]]:
    """The metric's dimensions for ``variant``, or [] when the resource's name is unknown."""
    endpoint = endpoints.variant(variant)
    if spec.resource == "table":
        return [{"Name": "TableName", "Value": endpoint.table}]
    resources = (endpoints.extra.get(AWS_RESOURCES_KEY) or {}).get(variant) or {}
    if spec.resource == "function":
        name = resources.get("function_name")
        return [{"Name": "FunctionName", "Value": str(name)}] if name else []
    name = resources.get("api_name")
    stage = resources.get("stage") or urlparse(endpoint.base_url).path.rstrip("/").rsplit("/")[-1]
    if not name or not stage:
        return []
    return [{"Name": "ApiName", "Value": str(name)}, {"Name": "Stage", "Value": stage}]


def metric_queries(
    endpoints: Endpoints, variant: str
) -> tuple[list[dict[str, Any]], dict[str, tuple[MetricSpec, str, list[dict[str, str]]]]]:
    """GetMetricData queries for ``variant`` and what each query id stands for."""
    queries: list[dict[str, Any]] = []
    meaning: dict[str, tuple[MetricSpec, str, list[dict[str, str]]]] = {}
    for spec in CLOUDWATCH_METRICS:
        if variant not in spec.variants:
            continue
        dimensions = _dimensions(spec, endpoints, variant)
        if not dimensions:
            continue
        for stat in spec.stats:
            query_id = f"m{len(queries)}"
            metric = {
                "Namespace": spec.namespace,
                "MetricName": spec.name,
                "Dimensions": dimensions,
            }
            queries.append(
                {
                    "Id": query_id,
                    "MetricStat": {"Metric": metric, "Period": PERIOD_S, "Stat": stat},
                    "ReturnData": True,
                }
            )
            meaning[query_id] = (spec, stat, dimensions)
    return queries, meaning


class AwsStageSide:
    """:class:`~loadtests.collect.StageSide` of a deployed stack."""

    source = "cloudwatch"

    def __init__(
        self,
        endpoints: Endpoints,
        run_id: str,
        *,
        session: Any | None = None,
        long_poll_s: int = DEFAULT_LONG_POLL_S,
        drain_deadline_s: float = SQS_DRAIN_DEADLINE_S,
    ) -> None:
        self.endpoints = endpoints
        self.run_id = run_id
        self.long_poll_s = long_poll_s
        self.drain_deadline_s = drain_deadline_s
        # Receipt handles of messages read but not yet deleted (their rows are not written yet).
        self.unacknowledged: list[str] = []
        session = session or boto3.Session(region_name=endpoints.region)
        self.dynamodb = session.client("dynamodb")
        self.streams = session.client("dynamodbstreams")
        self.sqs = session.client("sqs")
        self.cloudwatch = session.client("cloudwatch")
        destination = endpoints.variants.get("storage_first")
        self.queue_url = destination.failure_destination if destination else None

    def check(self) -> None:
        """Before the run: credentials work and both tables exist, else say what to do."""
        for name, endpoint in self.endpoints.variants.items():
            try:
                self.dynamodb.describe_table(TableName=endpoint.table)
            except NoCredentialsError:
                raise StackNotDeployedError(
                    "no AWS credentials; configure a profile (AWS_PROFILE) or environment "
                    "credentials for the account the stacks are deployed in"
                ) from None
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                raise StackNotDeployedError(
                    f"the {name} table {endpoint.table} cannot be read in {self.endpoints.region} "
                    f"({code}); run `asyncbench deploy` or check the endpoints file"
                ) from None

    def begin_trial(self) -> None:
        """The previous trial's rows are written by now: delete the messages they came from."""
        self.acknowledge()

    def acknowledge(self) -> None:
        """Delete the parked messages read so far (call once their rows are written)."""
        while self.unacknowledged and self.queue_url:
            batch, self.unacknowledged = self.unacknowledged[:10], self.unacknowledged[10:]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle}
                    for index, handle in enumerate(batch)
                ],
            )

    def items(self, variant: str) -> list[dict[str, Any]]:
        return scan_run_items(self.dynamodb, self.endpoints.variant(variant).table, self.run_id)

    def new_parked_records(self) -> list[dict[str, Any]]:
        """Parked records that arrived since the last call, read with SQS long polling.

        Stops only after an empty long poll while the queue reports 0 visible and 0 in flight
        (besides the messages this side holds), or at the drain deadline (the next call goes on).
        Messages are not deleted here but by :meth:`acknowledge`, once their rows are written.
        """
        if not self.queue_url:
            return []
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.drain_deadline_s
        while time.monotonic() < deadline:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.long_poll_s,
                VisibilityTimeout=PARKED_VISIBILITY_S,
            )
            messages = response.get("Messages", [])
            for message in messages:
                records.append(_parse_body(message["Body"]))
                self.unacknowledged.append(message["ReceiptHandle"])
            if not messages and self._queue_is_empty():
                break
        return records

    def _queue_is_empty(self) -> bool:
        """No message visible or in flight, other than the ones read and held here."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ).get("Attributes", {})
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        return visible == 0 and in_flight <= len(self.unacknowledged)

    def resolve(self, record: Mapping[str, Any]) -> list[str]:
        return resolve_parked_record(self.streams, record)

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        """CloudWatch datapoints of the variant's resources, per minute, over the window."""
        queries, meaning = metric_queries(self.endpoints, variant)
        if not queries:
            return []
        # Whole periods around the window, so the first and last minute are not cut off.
        # A window longer than a run can be is a caller's mistake: cap it instead of asking
        # CloudWatch for years of empty minutes.
        start_ms = max(start_ms, end_ms - MAX_WINDOW_S * 1000.0)
        start = math.floor(start_ms / 1000 / PERIOD_S) * PERIOD_S
        end = math.ceil(end_ms / 1000 / PERIOD_S) * PERIOD_S + PERIOD_S
        rows: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
        }
        while True:
            response = self.cloudwatch.get_metric_data(**arguments)
            for result in response.get("MetricDataResults", []):
                spec, stat, dimensions = meaning[result["Id"]]
                described = {item["Name"]: item["Value"] for item in dimensions}
                for stamp, value in zip(result["Timestamps"], result["Values"], strict=False):
                    if value is None:
                        continue
                    rows.append(
                        {
                            "variant": variant,
                            "source": self.source,
                            "metric": spec.name,
                            "timestamp_ms": stamp.timestamp() * 1000.0,
                            "value": float(value),
                            "unit": spec.unit,
                            "dimensions": json.dumps(
                                {**described, "namespace": spec.namespace, "stat": stat},
                                sort_keys=True,
                            ),
                        }
                    )
            token = response.get("NextToken")
            if not token:
                return rows
            arguments["NextToken"] = token
