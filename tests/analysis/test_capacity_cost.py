from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest

from analysis import capacity, cost, engine, plots
from analysis.analyze import RunAnalysis
from analysis.load import load_prices
from analysis.metrics import lambda_usage, metric_mean, metric_total
from analysis.synthetic import SyntheticSpec, build_run


def _staircase() -> pd.DataFrame:
    """direct breaks the 500 ms SLO at 80/s; storage_first errors 5% at 80/s. 40 s stages: the
    lowest has 400 requests, enough (>= 368) for a bounded p99."""
    spec = SyntheticSpec(
        scenario="capacity", stages=((40.0, 10.0), (40.0, 20.0), (40.0, 40.0), (40.0, 80.0)),
        repetitions=1,
    )  # fmt: skip
    run = build_run(spec)
    client = run.client.copy()
    slow = (client["variant"] == "direct") & (client["stage"] == 3)
    client.loc[slow, "latency_ms"] = 800.0
    client.loc[slow, "latency_from_intended_ms"] = 800.0
    failing = (client["variant"] == "storage_first") & (client["stage"] == 3)
    client.loc[failing[failing].index[::20], "outcome"] = "server_error"
    return client, run.server


def _stage_table(
    client: pd.DataFrame, server: pd.DataFrame, slo_p99_ms: float, error_threshold: float
) -> pd.DataFrame:
    with engine.frames_connection(client=client, server=server) as connection:
        return capacity.stage_table(
            connection, slo_p99_ms=slo_p99_ms, error_threshold=error_threshold
        )


def _usage(stack_config: dict[str, object], **tables: pd.DataFrame) -> pd.DataFrame:
    with engine.frames_connection(**tables) as connection:
        return cost.usage(connection, stack_config)


def test_knee_is_the_last_stage_before_the_first_failure() -> None:
    client, server = _staircase()
    stages = _stage_table(client, server, slo_p99_ms=500.0, error_threshold=0.01)
    knees = capacity.knee(stages).set_index("variant")
    assert knees.loc["direct", "knee_rate_per_s"] == 40.0
    assert knees.loc["direct", "first_failing_rate_per_s"] == 80.0
    assert knees.loc["storage_first", "knee_rate_per_s"] == 40.0
    error_share = stages.set_index(["variant", "stage"]).loc[("storage_first", 3), "error_share"]
    assert error_share == pytest.approx(0.05)
    # A generous threshold lets storage_first pass every stage.
    lenient = _stage_table(client, server, slo_p99_ms=500.0, error_threshold=0.1)
    assert capacity.knee(lenient).set_index("variant").loc["storage_first", "knee_rate_per_s"] == 80


def test_knee_ignores_a_pass_above_a_failure() -> None:
    stages = pd.DataFrame(
        {
            "variant": "direct",
            "stage": [0, 1, 2],
            "offered_per_s": [10.0, 20.0, 40.0],
            "passes": [True, False, True],
            "processed_per_s": [10.0, 20.0, 40.0],
        }
    )
    assert capacity.knee(stages)["knee_rate_per_s"].iloc[0] == 10.0
    stages["passes"] = False
    assert math.isnan(capacity.knee(stages)["knee_rate_per_s"].iloc[0])


def test_storage_first_drain_rate_and_backlog_growth() -> None:
    # Offered 80/s to a processor that drains 50/s: the backlog grows by ~30/s.
    spec = SyntheticSpec(stages=((20.0, 80.0),), drain_rate_per_s=50.0, repetitions=1)
    run = build_run(spec)
    stages = _stage_table(run.client, run.server, slo_p99_ms=1e9, error_threshold=1)
    row = stages.set_index("variant").loc["storage_first"]
    assert row["processed_per_s"] == pytest.approx(50.0, rel=0.03)
    assert row["backlog_growth_per_s"] == pytest.approx(30.0, rel=0.05)
    assert capacity.knee(stages).set_index("variant").loc["storage_first", "drain_rate_per_s"] == (
        pytest.approx(50.0, rel=0.03)
    )


def test_littles_law_concurrency() -> None:
    knees = pd.DataFrame(
        {"variant": ["direct", "storage_first"], "knee_rate_per_s": [100.0, 100.0]}
    )
    metrics = pd.DataFrame(
        {
            "variant": ["direct", "direct", "storage_first", "storage_first"],
            "metric": ["Duration", "Duration", "Duration", "BatchSize"],
            "value": [40.0, 60.0, 500.0, 10.0],
            "source": "local",
            "dimensions": None,
        }
    )
    with engine.frames_connection(metrics=metrics) as connection:
        table = capacity.concurrency_at_knee(connection, knees)
    table = table.set_index("variant")
    assert table.loc["direct", "concurrency"] == pytest.approx(5.0)  # 100/s x 0.05 s
    assert table.loc["storage_first", "concurrency"] == pytest.approx(5.0)  # 10 batches/s x 0.5 s


def test_cost_per_million_known_answer() -> None:
    """1 invocation of 20.3 ms (billed 21 ms) at 1024 MB per request, 100-byte bodies."""
    run = build_run(SyntheticSpec(repetitions=1, stages=((10.0, 10.0),)))
    usage = _usage({"memory_mb": 1024}, client=run.client, server=run.server, metrics=run.metrics)
    prices = load_prices()
    table = cost.cost_per_million(usage, prices, "arm64").set_index(["variant", "component"])
    unit = prices["prices"]
    gb_seconds = 1e6 * 0.021 * 1.0
    assert table.loc[("direct", "Lambda GB-seconds"), "cost"] == pytest.approx(
        gb_seconds * unit["lambda_per_gb_second_arm64"]
    )
    # direct: 1 write of 300 bytes (1 unit); storage_first: API PutItem + processor write.
    assert table.loc[("direct", "DynamoDB write units"), "per_million_requests"] == 1e6
    assert table.loc[("storage_first", "DynamoDB write units"), "per_million_requests"] == 2e6
    expected_direct = (
        unit["api_gateway_rest_per_million_requests"]
        + unit["lambda_per_million_requests"]
        + gb_seconds * unit["lambda_per_gb_second_arm64"]
        + unit["dynamodb_per_million_write_request_units"]
        + (cost.PLATFORM_LOG_BYTES + cost.HANDLER_LOG_BYTES["direct"])
        / 1e3
        * unit["cloudwatch_logs_ingestion_per_gb"]
    )
    assert table.loc[("direct", "total"), "cost"] == pytest.approx(expected_direct)
    # storage_first's processor reads each record's item once (strongly consistent): 1 unit.
    assert table.loc[("storage_first", "DynamoDB read units"), "per_million_requests"] == 1e6
    assert table.loc[("direct", "DynamoDB read units"), "per_million_requests"] == 0
    assert "estimate" in table.loc[("storage_first", "DynamoDB read units"), "basis"]
    assert "estimate" in table.loc[("direct", "CloudWatch Logs ingestion"), "basis"]
    assert table.loc[("storage_first", "SQS requests"), "per_million_requests"] == 0


def test_parked_batches_are_billed_sqs_requests() -> None:
    run = build_run(SyntheticSpec(repetitions=1, stages=((10.0, 10.0),), parked_per_trial=5))
    tables = {"client": run.client, "server": run.server, "parked": run.parked}
    usage = _usage({"memory_mb": 1024}, metrics=run.metrics, **tables)
    assert usage.set_index("variant").loc["storage_first", "sqs_requests"] == 5


def test_cost_without_metrics_is_estimated_and_says_so() -> None:
    run = build_run(SyntheticSpec(repetitions=1, stages=((10.0, 10.0),)))
    empty = run.metrics.iloc[0:0]
    usage = _usage({"memory_mb": 128}, client=run.client, server=run.server, metrics=empty)
    assert set(usage["source"]) == {"estimated from items"}
    lines = cost.assumptions(load_prices(), usage, "local")
    assert any("estimate" in line for line in lines)
    assert any("would cost on AWS" in line for line in lines)


def test_capacity_section_only_for_staircases(analyses: dict[str, RunAnalysis]) -> None:
    assert analyses["capacity"].is_capacity
    assert not analyses["baseline"].is_capacity
    baseline_scenario = analyses["baseline"].run.manifest["scenario"]
    declared = dataclasses.replace(
        analyses["baseline"].run,
        manifest={
            **analyses["baseline"].run.manifest,
            "scenario": {**baseline_scenario, "capacity": True},
        },
    )
    assert dataclasses.replace(analyses["baseline"], run=declared).is_capacity
    knees = analyses["capacity"].knees.set_index("variant")
    assert knees.loc["storage_first", "knee_rate_per_s"] == 80.0


def test_cloudwatch_metrics_use_the_right_statistics() -> None:
    def row(metric: str, stat: str, value: float) -> dict[str, object]:
        dimensions = json.dumps({"stat": stat, "namespace": "AWS/Lambda"}, sort_keys=True)
        return {
            "variant": "direct", "source": "cloudwatch", "metric": metric, "value": value,
            "dimensions": dimensions,
        }  # fmt: skip

    metrics = pd.DataFrame(
        [
            row("Invocations", "Sum", 600.0),
            row("Invocations", "Sum", 400.0),
            row("Duration", "Average", 20.0),
            row("Duration", "p99", 900.0),
            row("Duration", "Maximum", 1500.0),
            row("ConsumedWriteCapacityUnits", "Sum", 1000.0),
        ]
    )
    with engine.frames_connection(metrics=metrics) as connection:
        usage = lambda_usage(connection, "direct")
        assert usage is not None and not usage.exact
        assert usage.invocations == 1000.0
        assert usage.billed_ms == pytest.approx(1000 * 20.5)
        assert metric_mean(connection, "direct", "Duration") == 20.0
        assert metric_total(connection, "direct", "ConsumedWriteCapacityUnits") == 1000.0
        assert metric_total(connection, "storage_first", "Invocations") is None


def test_sustained_rate_is_where_storage_first_processing_keeps_up() -> None:
    # The API accepts every stage fast, but a 50/s processor falls behind at 80/s.
    spec = SyntheticSpec(
        scenario="capacity", stages=((10.0, 10.0), (10.0, 20.0), (10.0, 40.0), (10.0, 80.0)),
        drain_rate_per_s=50.0, repetitions=1,
    )  # fmt: skip
    run = build_run(spec)
    stages = _stage_table(run.client, run.server, slo_p99_ms=500.0, error_threshold=0.01)
    flags = stages.set_index(["variant", "stage"])["keeps_up"]
    assert flags[("storage_first", 2)] and not flags[("storage_first", 3)]
    knees = capacity.knee(stages).set_index("variant")
    assert knees.loc["storage_first", "knee_rate_per_s"] == 80.0
    assert knees.loc["storage_first", "sustained_rate_per_s"] == 40.0
    assert knees.loc["direct", "sustained_rate_per_s"] == 80.0
    data = plots.rate_vs_p99_plot(stages, capacity.knee(stages), 500.0)
    labels = [label for _, _, label in data.markers]
    assert "storage_first keeps up to" in labels and "storage_first knee" in labels


def test_concurrency_uses_the_metrics_of_the_sustained_stage() -> None:
    windows = pd.DataFrame(
        {
            "variant": "storage_first", "trial": 1, "stage": [0, 1],
            "start": [0.0, 1000.0], "end": [1000.0, 2000.0], "rate": [20.0, 80.0],
        }
    )  # fmt: skip
    metrics = pd.DataFrame(
        {
            "variant": "storage_first", "source": "local", "dimensions": None,
            "metric": ["BatchSize", "Duration", "BatchSize", "Duration"],
            "timestamp_ms": [500.0, 500.0, 1500.0, 1500.0],
            "value": [2.0, 100.0, 40.0, 900.0],
        }
    )  # fmt: skip
    knees = pd.DataFrame(
        {"variant": ["storage_first"], "knee_rate_per_s": [80.0], "sustained_rate_per_s": [20.0]}
    )
    with engine.frames_connection(metrics=metrics) as connection:
        row = capacity.concurrency_at_knee(connection, knees, windows).iloc[0]
    assert row["mean_batch_size"] == 2.0 and row["mean_duration_ms"] == 100.0
    assert row["concurrency"] == pytest.approx(20 / 2 * 0.1)
