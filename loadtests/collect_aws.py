"""The AWS side of a run: DynamoDB tables and streams, the SQS failure destination, CloudWatch.

Names the endpoints file does not hold directly come from its ``aws_resources`` extra, written
by ``asyncbench deploy`` (``{variant: {"function_name", "api_name", "stage", ...}}``). A metric
whose resource name is unknown is skipped, not guessed. Without a recorded stage, the API's
stage is the last path segment of the variant's base URL ("direct", "storage-first").
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError, NoCredentialsError

from asyncbench.errors import StackNotDeployedError
from loadtests.collect_aws_logs import (
    INVOCATION_PATTERN,
    REPORT_PATTERN,
    TrialSpan,
    invocation_rows,
    read_log_events,
)
from loadtests.collect_dynamodb import iter_run_items, resolve_parked_record
from stack.endpoints import Endpoints
from stack.outputs import AWS_RESOURCES_KEY

__all__ = [
    "CLOUDWATCH_METRICS",
    "AwsStageSide",
    "MetricSpec",
    "assign_minutes",
    "metric_queries",
    "trial_spans",
]

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
# One-minute Lambda, API Gateway and DynamoDB metrics (and log lines) are published minutes
# late: after the last trial, wait this long before reading them.
DEFAULT_SETTLE_S = 180.0
SETTLE_PROGRESS_S = 15.0
SCAN_PROGRESS_S = 15.0  # a progress line while a long Scan of the run's items goes on


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


# Only what the functions' logs cannot tell (collect_aws_logs has invocations, durations, INIT,
# errors and batch sizes per invocation, exact per trial): a throttled invocation never runs and
# logs nothing; the iterator age, API Gateway's view and DynamoDB's capacity are not in them.
CLOUDWATCH_METRICS = (
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
    MetricSpec("AWS/DynamoDB", "ConsumedReadCapacityUnits", "table", ("Sum",), "Count"),
    MetricSpec("AWS/DynamoDB", "WriteThrottleEvents", "table", ("Sum",), "Count"),
    MetricSpec("AWS/DynamoDB", "ReadThrottleEvents", "table", ("Sum",), "Count"),
)  # fmt: skip


def trial_spans(trials: Sequence[Mapping[str, Any]]) -> list[TrialSpan]:
    """Each trial's server-side span: its start until its collection ended (TRIALS rows)."""
    spans = []
    for row in trials:
        start = row.get("started_at_ms")
        end = row.get("collected_at_ms") or row.get("ended_at_ms")
        if isinstance(start, int | float) and isinstance(end, int | float):
            spans.append(TrialSpan(int(row["trial"]), str(row["variant"]), start, end))
    return spans


def assign_minutes(
    rows: Sequence[Mapping[str, Any]], spans: Sequence[TrialSpan], variant: str, run_id: str
) -> list[dict[str, Any]]:
    """Give each one-minute datapoint to the one trial of ``variant`` that overlaps its minute
    most (the earlier on a tie), so no minute is counted twice; a minute no trial of the
    variant overlaps is dropped (it is another variant's or between runs)."""
    assigned = []
    for row in rows:
        minute_start = float(row["timestamp_ms"])
        minute_end = minute_start + PERIOD_S * 1000.0
        best: tuple[float, int] | None = None
        for span in spans:
            if span.variant != variant:
                continue
            overlap = min(minute_end, span.end_ms) - max(minute_start, span.start_ms)
            if overlap > 0 and (best is None or overlap > best[0]):
                best = (overlap, span.trial)
        if best is not None:
            assigned.append({**row, "run_id": run_id, "trial": best[1]})
    return assigned


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
        settle_s: float = DEFAULT_SETTLE_S,
        page_size: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.run_id = run_id
        self.page_size = page_size
        self.progress = progress or _say
        self.long_poll_s = long_poll_s
        self.drain_deadline_s = drain_deadline_s
        self.settle_s = settle_s
        # Receipt handles of messages read but not yet deleted (their rows are not written yet).
        self.unacknowledged: list[str] = []
        session = session or boto3.Session(region_name=endpoints.region)
        self.dynamodb = session.client("dynamodb")
        self.streams = session.client("dynamodbstreams")
        self.sqs = session.client("sqs")
        self.cloudwatch = session.client("cloudwatch")
        self.logs = session.client("logs")
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

    def items(self, variant: str) -> Iterator[dict[str, Any]]:
        """The run's items page by page as the Scan returns them (a table of tens of millions
        is not read into one list here), with a progress line every :data:`SCAN_PROGRESS_S`."""
        table = self.endpoints.variant(variant).table
        started = last = time.monotonic()

        def on_page(pages: int, items: int) -> None:
            nonlocal last
            if time.monotonic() - last >= SCAN_PROGRESS_S:
                last = time.monotonic()
                self.progress(
                    f"scanning {table}: {items:,} items of the run in {pages:,} pages, "
                    f"{last - started:.0f} s"
                )

        return iter_run_items(
            self.dynamodb, table, self.run_id, page_size=self.page_size, on_page=on_page
        )

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
        """Nothing per trial: logs and metrics arrive late on AWS; :meth:`finish_run` reads
        them once, after the last trial, and gives each trial exactly its own."""
        return []

    def finish_run(
        self,
        trials: Sequence[Mapping[str, Any]],
        *,
        wait: Callable[[float], bool],
        progress: Callable[[str], None],
    ) -> list[dict[str, Any]]:
        """After the last trial: delete the parked messages whose rows are written, wait for
        CloudWatch to publish, then read per-invocation logs and metrics. ``trials`` are the
        TRIALS rows; ``wait(seconds)`` returns True when the run is aborted (then no rows)."""
        self.acknowledge()
        spans = trial_spans(trials)
        if not spans:
            return []
        deadline = time.monotonic() + self.settle_s
        while (left := deadline - time.monotonic()) > 0:
            progress(f"waiting {left:.0f} s for CloudWatch to publish the run's logs and metrics")
            if wait(min(left, SETTLE_PROGRESS_S)):
                return []
        start_ms = min(span.start_ms for span in spans)
        end_ms = max(span.end_ms for span in spans)
        rows: list[dict[str, Any]] = []
        for variant in sorted({span.variant for span in spans}):
            rows += self.invocation_metrics(variant, spans, start_ms, end_ms)
            datapoints = self.cloudwatch_datapoints(variant, start_ms, end_ms)
            rows += assign_minutes(datapoints, spans, variant, self.run_id)
        progress(f"read {len(rows)} metric rows from CloudWatch Logs and CloudWatch")
        return rows

    def invocation_metrics(
        self, variant: str, spans: Sequence[TrialSpan], start_ms: float, end_ms: float
    ) -> list[dict[str, Any]]:
        """Per-invocation rows from the variant's function log group (REPORT + own line)."""
        resources = (self.endpoints.extra.get(AWS_RESOURCES_KEY) or {}).get(variant) or {}
        function = resources.get("function_name")
        if not function:
            return []
        group = str(resources.get("log_group") or f"/aws/lambda/{function}")
        events = [
            *read_log_events(self.logs, group, start_ms, end_ms, REPORT_PATTERN),
            *read_log_events(self.logs, group, start_ms, end_ms, INVOCATION_PATTERN),
        ]
        return invocation_rows(variant, str(function), events, spans, self.run_id)

    def cloudwatch_datapoints(
        self, variant: str, start_ms: float, end_ms: float
    ) -> list[dict[str, Any]]:
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


def _say(message: str) -> None:
    print(f"collect: {message}", file=sys.stderr, flush=True)
