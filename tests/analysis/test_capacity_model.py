"""The capacity model against synthetic per-invocation records with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.capacity_model import (
    InvocationCost,
    fit_invocation_cost,
    invocation_points,
    plan_capacity,
    plan_table,
    sustained_rate_per_s,
)


def _metrics(
    batches: list[int], overhead_ms: float, per_record_ms: float, noise: float
) -> pd.DataFrame:
    generator = np.random.default_rng(7)
    rows = []
    for index, batch in enumerate(batches):
        dimensions = json.dumps({"request_id": f"inv-{index}"})
        duration = overhead_ms + per_record_ms * batch + generator.normal(0, noise)
        for metric, value in (("BatchSize", batch), ("Duration", duration)):
            rows.append({"trial": 1 + index % 2, "variant": "storage_first", "metric": metric,
                         "value": float(value), "dimensions": dimensions})  # fmt: skip
    return pd.DataFrame(rows)


def test_fit_recovers_overhead_and_per_record_cost_per_invocation() -> None:
    batches = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89] * 5
    points = invocation_points(_metrics(batches, 15.0, 21.0, noise=1.0))
    assert set(points["basis"]) == {"per invocation"} and len(points) == 50
    cost = fit_invocation_cost(points)
    assert cost.overhead_ms == pytest.approx(15.0, abs=1.0)
    assert cost.per_record_ms == pytest.approx(21.0, abs=0.05)
    assert cost.r_squared > 0.99


def test_fit_from_per_trial_means_when_invocations_do_not_pair() -> None:
    metrics = _metrics([2, 2, 10, 10], 10.0, 20.0, noise=0.0).drop(columns="dimensions")
    points = invocation_points(metrics)
    assert set(points["basis"]) == {"per-trial means"}
    # trial 1 holds batches 2 and 10 (mean 6), trial 2 the same: one wave count, no slope.
    cost = fit_invocation_cost(points)
    assert cost.overhead_ms == 0.0 and cost.per_record_ms == pytest.approx(130 / 6)


def test_concurrency_counts_waves_and_rate_scales_with_lanes() -> None:
    cost = InvocationCost(overhead_ms=20.0, per_record_ms=20.0, points=0, r_squared=1.0, basis="")
    # 100 records 1 at a time: 20 + 100*20 = 2020 ms per batch -> 49.5/s per lane.
    one = sustained_rate_per_s(cost, shards=1, parallelization_factor=1, batch_size=100,
                               batch_concurrency=1)  # fmt: skip
    assert one == pytest.approx(100_000 / 2020)
    # 10 at a time: 20 + 10*20 = 220 ms; 4 lanes.
    many = sustained_rate_per_s(cost, shards=2, parallelization_factor=2, batch_size=100,
                                batch_concurrency=10)  # fmt: skip
    assert many == pytest.approx(4 * 100_000 / 220)


def test_plan_gives_partitions_lanes_and_littles_law() -> None:
    cost = InvocationCost(overhead_ms=20.0, per_record_ms=20.0, points=0, r_squared=1.0, basis="")
    plan = plan_capacity(10_000, cost, batch_size=100, batch_concurrency=10, direct_duration_ms=25)
    assert plan.partitions == 20  # 2 WCU per request / 1000 WCU per partition
    # A lane drains 100/0.22 s = 454.5/s: 23 lanes, a factor of 2 on 20 shards.
    assert plan.parallelization_factor == 2 and plan.lanes == 40
    assert plan.direct_concurrency == pytest.approx(250)
    assert plan.direct_within_account_limit
    assert math.isfinite(plan.expected_lag_ms) and plan.expected_lag_ms < 1000
    # One at a time a lane drains 10/0.22 s = 45/s: 10 x 20 lanes are too few, so the plan
    # raises batch_concurrency until they suffice (10 records at 20+20 ms: 250/s per lane).
    slow = plan_capacity(10_000, cost, batch_size=10, batch_concurrency=1, direct_duration_ms=25)
    assert slow.parallelization_factor is not None and slow.batch_concurrency > 1
    assert slow.lanes * 10_000 / (20 + math.ceil(10 / slow.batch_concurrency) * 20) >= 10_000
    capped = plan_capacity(10_000, cost, batch_size=10, batch_concurrency=1,
                           direct_duration_ms=25, max_batch_concurrency=1)  # fmt: skip
    assert capped.parallelization_factor is None and math.isinf(capped.expected_lag_ms)
    table = plan_table([1000, 100_000], cost, batch_size=100, batch_concurrency=10,
                       direct_duration_ms=25)  # fmt: skip
    assert list(table["shards"]) == [2, 200]
    assert not table["direct_within_account_limit"].iloc[1]  # 2,500 > 1,000
