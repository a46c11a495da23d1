"""Benchmark: stream lag of the local event source mapping with the real stream processor.

Writes PENDING request items (the item the storage-first mapping template writes) straight to
DynamoDB Local at a fixed open-loop rate, lets the local event source mapping deliver them to
``processor.stream.handler`` in the local Lambda runtime, then reads the items back and reports,
on the server clock, accepted -> started and accepted -> processed lag: percentiles over the
whole run, and the p50 of the first and the last 10 s (growth means the mapping falls behind).

Target (issue 3): p50 accepted -> started within the poll interval + 50 ms, no growth.

    .venv/bin/python scripts/bench_stream_lag.py [--rate 200] [--duration 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from stack.config import StackConfig
from stack.local.awslambda.runtime import LocalFunction
from stack.local.dynamodb.dynamodb_local import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    DynamoDBLocal,
    client_kwargs,
)
from stack.local.dynamodb.http_client import DynamoDbHttp
from stack.local.dynamodb.tables import table_definition
from stack.local.event_source_mapping.mapping import EventSourceMapping
from stack.local.metrics import MetricsLog


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def create_table(client: Any) -> tuple[str, str]:
    name = f"bench-lag-{uuid.uuid4().hex[:8]}"
    description = client.create_table(**table_definition(name, with_stream=True))[
        "TableDescription"
    ]
    return name, description["LatestStreamArn"]


def write_requests(http: DynamoDbHttp, table: str, rate: float, duration_s: float) -> int:
    """Open-loop PutItem at ``rate``/s; returns how many sends were more than 50 ms late."""
    body = json.dumps({"work_ms": 0})
    start = time.monotonic()
    late = 0
    pause = threading.Event()
    for index in range(int(rate * duration_s)):
        intended = start + index / rate
        delay = intended - time.monotonic()
        if delay > 0:
            pause.wait(delay)
        elif delay < -0.05:
            late += 1
        item = {
            "id": {"S": f"req-{index:06d}"},
            "run_id": {"S": "bench"},
            "status": {"S": "PENDING"},
            "attempts": {"N": "0"},
            "duplicates": {"N": "0"},
            "accepted_at_ms": {"N": str(time.time_ns() // 1_000_000)},
            "request": {"S": body},
        }
        status, answer = http.call(
            "PutItem", json.dumps({"TableName": table, "Item": item}).encode()
        )
        if status != 200:
            raise RuntimeError(f"PutItem failed: {status} {answer[:200]!r}")
    return late


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def number(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return float(value) if value is not None else None


class NoopFunction:
    """A function that does nothing but note when each record reached it (``--function noop``):
    isolates the mapping's own lag from the processor's work."""

    name = "bench-noop"
    variant = "storage_first"

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def invoke(self, event: dict[str, Any]) -> Any:
        now_ms = time.time_ns() / 1_000_000
        for record in event["Records"]:
            accepted = float(record["dynamodb"]["NewImage"]["accepted_at_ms"]["N"])
            self.rows.append((accepted, now_ms - accepted, now_ms - accepted))
        return _Ok()


class _Ok:
    status = "ok"
    payload = None
    error_type = None


def item_rows(items: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    rows = []
    for item in items:
        accepted, started = number(item, "accepted_at_ms"), number(item, "started_at_ms")
        processed = number(item, "processed_at_ms")
        if accepted is not None and started is not None and processed is not None:
            rows.append((accepted, started - accepted, processed - accepted))
    return rows


def report(
    total: int, rows: list[tuple[float, float, float]], poll_interval_s: float, window_s: float
) -> None:
    rows = sorted(rows)
    items = range(total)
    print(f"items: {len(items)}  processed: {len(rows)}  pending: {len(items) - len(rows)}")
    if not rows:
        return
    started_lag = [row[1] for row in rows]
    processed_lag = [row[2] for row in rows]
    for label, values in (
        ("accepted->started", started_lag),
        ("accepted->processed", processed_lag),
    ):
        print(
            f"{label:>20} ms: p50 {percentile(values, 0.5):7.1f}"
            f"  p90 {percentile(values, 0.9):7.1f}  p99 {percentile(values, 0.99):7.1f}"
            f"  max {max(values):7.1f}"
        )
    first_end = rows[0][0] + window_s * 1000
    last_start = rows[-1][0] - window_s * 1000
    first = [row[1] for row in rows if row[0] <= first_end]
    last = [row[1] for row in rows if row[0] >= last_start]
    target = poll_interval_s * 1000 + 50
    p50 = statistics.median(started_lag)
    print(
        f"accepted->started p50 first {window_s:.0f}s: {statistics.median(first):.1f} ms, "
        f"last {window_s:.0f}s: {statistics.median(last):.1f} ms"
    )
    print(
        f"target p50 <= poll interval + 50 ms = {target:.0f} ms: "
        f"{'MET' if p50 <= target else 'MISSED'}"
    )
    growth = statistics.median(last) - statistics.median(first)
    print(f"growth first->last p50: {growth:+.1f} ms ({'none' if growth < 50 else 'GROWING'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="PutItem per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="seconds")
    parser.add_argument("--window", type=float, default=10.0, help="first/last window, seconds")
    parser.add_argument(
        "--function",
        choices=("processor", "noop"),
        default="processor",
        help="the real stream handler, or a no-op that measures the mapping alone",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-lag-"))
    config = StackConfig()
    dynamodb = DynamoDBLocal(log_path=workdir / "dynamodb.log")
    dynamodb.start()
    client = boto3.client("dynamodb", **client_kwargs(dynamodb.endpoint_url))
    table, stream_arn = create_table(client)
    metrics = MetricsLog(workdir / "metrics.jsonl")
    noop = NoopFunction() if args.function == "noop" else None
    function = LocalFunction(
        name="bench-stream-processor",
        variant="storage_first",
        handler="processor.stream.handler",
        environment={
            **config.processor_environment(table),
            "DYNAMODB_ENDPOINT_URL": dynamodb.endpoint_url,
            "AWS_REGION": LOCAL_REGION,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        },
        timeout_s=config.timeout_s,
        memory_mb=config.memory_mb,
        concurrency=config.reserved_concurrency or 10,
        metrics=metrics,
        log_path=workdir / "function.log",
    )
    mapping = EventSourceMapping(
        dynamodb_endpoint=dynamodb.endpoint_url,
        stream_arn=stream_arn,
        function=noop or function,
        config=config,
        failure_destination=workdir / "failures.jsonl",
        metrics=metrics,
        poll_interval_s=args.poll_interval,
    )
    http = DynamoDbHttp(
        dynamodb.endpoint_url,
        region=LOCAL_REGION,
        access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
    )
    try:
        mapping.start()
        print(f"writing {args.rate:.0f} requests/s for {args.duration:.0f} s ...", flush=True)
        began = time.monotonic()
        late = write_requests(http, table, args.rate, args.duration)
        elapsed = time.monotonic() - began
        achieved = args.rate * args.duration / elapsed
        print(f"achieved {achieved:.0f} requests/s; sends more than 50 ms late: {late}")
        expected = int(args.rate * args.duration)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if noop is not None:
                done = len(noop.rows)
            else:
                items = scan(client, table)
                done = sum(1 for item in items if item["status"]["S"] != "PENDING")
            if done >= expected:
                break
            threading.Event().wait(1.0)
        rows = noop.rows if noop is not None else item_rows(scan(client, table))
        report(expected, rows, args.poll_interval, args.window)
        print(f"failure destination records: {len(mapping.failure_destination.read())}")
    finally:
        mapping.stop()
        function.close()
        metrics.close()
        http.close()
        client.close()
        dynamodb.stop()
    print(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
