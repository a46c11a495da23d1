"""Per-invocation figures of an AWS run: REPORT lines and the handlers' own line from CloudWatch
Logs (moto), two back-to-back trials of a variant each getting only their own invocations, and
CloudWatch's minutes read once after the last trial, none counted twice."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from loadtests import collect_aws
from loadtests.collect_aws import AwsStageSide, assign_minutes
from loadtests.collect_aws_logs import INVOCATION_RECORD, TrialSpan, parse_report
from processor.runtime import INVOCATION_RECORD as HANDLERS_RECORD
from reports.schema import METRICS, conform
from stack.endpoints import Endpoints, VariantEndpoint

REGION = "us-east-1"
RUN = "run-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # moto computes no percentiles (and fails serializing them): fetch the plain statistics.
    plain_stats = tuple(
        dataclasses.replace(spec, stats=tuple(s for s in spec.stats if not s.startswith("p")))
        for spec in collect_aws.CLOUDWATCH_METRICS
    )
    monkeypatch.setattr(collect_aws, "CLOUDWATCH_METRICS", plain_stats)
    with mock_aws():
        yield


def _endpoints() -> Endpoints:
    api = "https://abc.execute-api.us-east-1.amazonaws.com"
    return Endpoints(
        target="aws",
        region=REGION,
        variants={
            "direct": VariantEndpoint(f"{api}/direct", "tbl-direct"),
            "storage_first": VariantEndpoint(f"{api}/storage-first", "tbl-sf", None),
        },
        extra={
            "aws_resources": {
                "direct": {"function_name": "fn-direct", "api_name": "api-direct"},
                "storage_first": {
                    "function_name": "fn-stream",
                    "api_name": "api-sf",
                    "log_group": "stream-logs",
                },
            }
        },
    )


def _report(request_id: str, duration: float, init: float | None = None) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration} ms",
        f"Billed Duration: {int(duration + (init or 0)) + 1} ms",
        "Memory Size: 256 MB",
        "Max Memory Used: 81 MB",
    ]
    if init is not None:
        parts.append(f"Init Duration: {init} ms")
    return "\t".join(parts) + "\t"


def _line(request_id: str, batch: int, run_ids: list[str], started_ms: int) -> str:
    fields = {
        "record": INVOCATION_RECORD,
        "handler": "stream",
        "awsRequestId": request_id,
        "batchSize": batch,
        "runIds": run_ids,
        "coldStart": False,
        "startedAtMs": started_ms,
        "endedAtMs": started_ms + 30,
        "error": None,
    }
    return json.dumps(fields)


def _put_logs(group: str, events: list[tuple[int, str]]) -> None:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2026/12/06/[$LATEST]abc")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/06/[$LATEST]abc",
        logEvents=[{"timestamp": ts, "message": message} for ts, message in sorted(events)],
    )


def _trial(trial: int, variant: str, start: int, collected: int) -> dict[str, Any]:
    return {
        "trial": trial,
        "variant": variant,
        "started_at_ms": start,
        "collected_at_ms": collected,
    }


def test_the_handlers_line_is_what_the_collector_looks_for() -> None:
    assert INVOCATION_RECORD == HANDLERS_RECORD


def test_report_lines_parse_with_and_without_init_and_status() -> None:
    cold = parse_report(_report("r1", 12.5, init=301.2))
    assert cold == {
        "request_id": "r1",
        "status": None,
        "duration_ms": 12.5,
        "billed_ms": 314.0,
        "memory_mb": 81.0,
        "init_ms": 301.2,
    }
    timeout = parse_report("REPORT RequestId: r2\tDuration: 3000.00 ms\tStatus: timeout")
    assert timeout is not None and timeout["status"] == "timeout"
    assert parse_report("START RequestId: r1 Version: $LATEST") is None


def test_two_back_to_back_trials_each_get_only_their_own_invocations(aws: None) -> None:
    now = int(time.time() * 1000) // 60_000 * 60_000 - 120_000  # two whole minutes ago
    trials = [
        _trial(1, "storage_first", now, now + 30_000),
        _trial(2, "direct", now + 31_000, now + 50_000),
        _trial(3, "storage_first", now + 51_000, now + 80_000),
    ]
    _put_logs(
        "stream-logs",
        [
            (now + 1_000, _line("inv-a", 3, [RUN], now + 900)),
            (now + 1_100, _report("inv-a", 70.0, init=250.0)),
            # Trial 3's first invocation starts 1 s after its start: its REPORT too.
            (now + 52_000, _line("inv-b", 2, [RUN], now + 51_950)),
            (now + 52_050, _report("inv-b", 45.0)),
            # Another run's invocation in trial 3's window: not this run's.
            (now + 60_000, _line("inv-other", 5, ["run-0"], now + 59_970)),
            (now + 60_030, _report("inv-other", 40.0)),
            # Before the run: in no trial's span.
            (now - 50_000, _report("inv-early", 10.0)),
        ],
    )
    _put_logs("/aws/lambda/fn-direct", [(now + 40_000, _report("inv-d", 25.0, init=180.0))])
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    for offset in (5_000, 65_000):  # one datapoint in each of the two minutes
        cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "IteratorAge",
                    "Dimensions": [{"Name": "FunctionName", "Value": "fn-stream"}],
                    "Timestamp": datetime.fromtimestamp((now + offset) / 1000, UTC),
                    "Value": 200.0,
                    "Unit": "Milliseconds",
                }
            ],
        )
    side = AwsStageSide(_endpoints(), RUN, long_poll_s=1, settle_s=0.05)
    messages: list[str] = []
    rows = side.finish_run(trials, wait=lambda _: False, progress=messages.append)
    metrics = pd.DataFrame(rows)
    conform(metrics, METRICS)
    assert any("waiting" in message for message in messages)

    logs = metrics[metrics["source"] == "cloudwatch_logs"]
    per_trial = {
        trial: dict(zip(group["metric"], group["value"], strict=True))
        for trial, group in logs.groupby("trial")
    }
    assert per_trial[1] == {
        "Invocations": 1.0,
        "Duration": 70.0,
        "BilledDuration": 321.0,
        "InitDuration": 250.0,
        "ColdStart": 1.0,
        "MaxMemoryUsed": 81.0,
        "BatchSize": 3.0,
    }
    assert per_trial[3] == {
        "Invocations": 1.0,
        "Duration": 45.0,
        "BilledDuration": 46.0,
        "MaxMemoryUsed": 81.0,
        "BatchSize": 2.0,
    }
    assert per_trial[2]["InitDuration"] == 180.0 and "BatchSize" not in per_trial[2]
    assert set(logs.loc[logs["trial"] == 2, "variant"]) == {"direct"}
    requests = {json.loads(d)["request_id"] for d in logs["dimensions"]}
    assert requests == {"inv-a", "inv-b", "inv-d"}

    ages = metrics[(metrics["source"] == "cloudwatch") & (metrics["metric"] == "IteratorAge")]
    # Each minute once, to the storage-first trial overlapping it most: minute 0 -> trial 1,
    # minute 1 (trial 3 holds 20 s of it, trial 1 none) -> trial 3.
    averages = ages[ages["dimensions"].str.contains('"stat": "Average"')]
    assert sorted(zip(averages["timestamp_ms"], averages["trial"], strict=True)) == [
        (float(now), 1),
        (float(now + 60_000), 3),
    ]


def test_a_minute_two_trials_share_is_counted_once_for_the_one_overlapping_it_most() -> None:
    spans = [
        TrialSpan(1, "direct", 0, 20_000),
        TrialSpan(2, "storage_first", 21_000, 45_000),
        TrialSpan(3, "direct", 50_000, 70_000),
    ]
    rows = [{"timestamp_ms": 0.0, "metric": "Throttles", "value": 4.0}]
    assert [row["trial"] for row in assign_minutes(rows, spans, "direct", RUN)] == [1]
    assert [row["trial"] for row in assign_minutes(rows, spans, "storage_first", RUN)] == [2]
    late = [{"timestamp_ms": 120_000.0, "metric": "Throttles", "value": 1.0}]
    assert assign_minutes(late, spans, "direct", RUN) == []


def test_an_aborted_settle_wait_reads_nothing(aws: None) -> None:
    side = AwsStageSide(_endpoints(), RUN, settle_s=60)
    trials = [{"trial": 1, "variant": "direct", "started_at_ms": 0.0, "collected_at_ms": 1.0}]
    assert side.finish_run(trials, wait=lambda _: True, progress=lambda _: None) == []
