"""A capacity model of both architectures, fitted on measured invocations: a MODEL, not a run.

Storage-first. An invocation of the stream function with a batch of ``n`` records, processed
``c`` at a time, takes ``overhead_ms + waves(n, c) * per_record_ms`` with
``waves = ceil(n / c)``: a per-batch overhead (the invoke, the BatchGetItem, the poll) plus one
record's work per wave. :func:`fit_invocation_cost` estimates both by least squares from
per-invocation records (Duration and BatchSize, as the local stage and CloudWatch name them) or,
where those cannot be paired, from per-trial means (exact for the linear model when ``c = 1``).

A lane (one shard x one unit of parallelization factor) processes one batch at a time, so a
saturated lane drains ``batch_size / duration(batch_size, c)`` records per second and the table
``shards * parallelization_factor`` times that (:func:`sustained_rate_per_s`).

Past one machine (:func:`plan_capacity`): DynamoDB splits a table into partitions of at most
1,000 write request units per second each, and its stream has one shard per partition
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html
"a single partition can support a maximum of ... 1,000 WCUs"; streams:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html, one shard per
partition). Every request writes its item twice (the API's PutItem, the processor's update),
1 KB or less each, so ``2 * R`` WCU/s. Lambda polls a shard about four times a second
(https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html), hence a mean poll delay of 125 ms.

Direct: concurrency by Little's law, ``R * duration``, against the account's concurrency limit
(1,000 by default, https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MAX_PARALLELIZATION_FACTOR",
    "PARTITION_WCU_PER_S",
    "CapacityPlan",
    "InvocationCost",
    "batch_duration_ms",
    "fit_invocation_cost",
    "invocation_points",
    "plan_capacity",
    "plan_table",
    "sustained_rate_per_s",
]

PARTITION_WCU_PER_S = 1000.0
"""Write request units a DynamoDB partition serves per second (AWS's documented limit)."""
WRITES_PER_REQUEST = 2.0
"""The API's PutItem and the processor's UpdateItem, each of one WCU for items up to 1 KB."""
MAX_PARALLELIZATION_FACTOR = 10
MEAN_POLL_DELAY_MS = 125.0
DEFAULT_ACCOUNT_CONCURRENCY = 1000


@dataclass(frozen=True)
class InvocationCost:
    """``duration = overhead_ms + ceil(batch / concurrency) * per_record_ms`` and its fit."""

    overhead_ms: float
    per_record_ms: float
    points: int
    r_squared: float
    basis: str
    """"per invocation" or "per-trial means"."""


def batch_duration_ms(cost: InvocationCost, batch: float, batch_concurrency: int) -> float:
    """Expected duration of one invocation with ``batch`` records."""
    return cost.overhead_ms + math.ceil(max(batch, 1) / batch_concurrency) * cost.per_record_ms


def sustained_rate_per_s(
    cost: InvocationCost,
    *,
    shards: int,
    parallelization_factor: int,
    batch_size: int,
    batch_concurrency: int,
) -> float:
    """Records per second the mapping drains when every lane runs full batches back to back."""
    lanes = shards * parallelization_factor
    return lanes * batch_size * 1000.0 / batch_duration_ms(cost, batch_size, batch_concurrency)


def invocation_points(metrics: pd.DataFrame, variant: str = "storage_first") -> pd.DataFrame:
    """(trial, batch_size, duration_ms) per invocation where Duration and BatchSize pair up by
    request id; else one row per trial with the means. Column ``basis`` says which."""
    rows = metrics[metrics["variant"] == variant]
    durations = rows[rows["metric"] == "Duration"]
    batches = rows[rows["metric"] == "BatchSize"]
    if durations.empty or batches.empty:
        return pd.DataFrame(columns=["trial", "batch_size", "duration_ms", "basis"])
    paired = _pair_by_request_id(durations, batches)
    if not paired.empty:
        return paired.assign(basis="per invocation")
    means = pd.DataFrame(
        {
            "batch_size": batches.groupby("trial")["value"].mean(),
            "duration_ms": durations.groupby("trial")["value"].mean(),
        }
    ).dropna()
    return means.reset_index().assign(basis="per-trial means")


def _request_ids(frame: pd.DataFrame) -> pd.Series:
    def one(dimensions: object) -> str | None:
        if not isinstance(dimensions, str) or "request_id" not in dimensions:
            return None
        value = json.loads(dimensions).get("request_id")
        return str(value) if value else None

    if "dimensions" not in frame:
        return pd.Series([None] * len(frame), index=frame.index)
    return frame["dimensions"].map(one)


def _pair_by_request_id(durations: pd.DataFrame, batches: pd.DataFrame) -> pd.DataFrame:
    left = durations.assign(request_id=_request_ids(durations)).dropna(subset=["request_id"])
    right = batches.assign(request_id=_request_ids(batches)).dropna(subset=["request_id"])
    if left.empty or right.empty:
        return pd.DataFrame(columns=["trial", "batch_size", "duration_ms"])
    merged = left[["trial", "request_id", "value"]].merge(
        right[["request_id", "value"]], on="request_id", suffixes=("_duration", "_batch")
    )
    return pd.DataFrame(
        {
            "trial": merged["trial"],
            "batch_size": merged["value_batch"],
            "duration_ms": merged["value_duration"],
        }
    )


def fit_invocation_cost(points: pd.DataFrame, batch_concurrency: int = 1) -> InvocationCost:
    """Least squares of ``duration_ms`` on ``ceil(batch_size / batch_concurrency)``.

    A ``batch_concurrency`` column (a tune run: each trial its own) overrides the argument.

    Per-trial means use ``batch / concurrency`` (the mean of the waves, approximately). Fewer
    than two distinct wave counts leave the slope undetermined: then all of the duration is
    taken as per-record cost (overhead 0), the conservative reading for scaling out.
    """
    if points.empty:
        raise ValueError("no invocation records to fit")
    per_invocation = str(points["basis"].iloc[0]) == "per invocation" if "basis" in points else True
    batch = points["batch_size"].to_numpy(dtype=float)
    concurrency = (
        points["batch_concurrency"].to_numpy(dtype=float)
        if "batch_concurrency" in points
        else np.full(len(points), float(batch_concurrency))
    )
    waves = np.ceil(batch / concurrency) if per_invocation else batch / concurrency
    duration = points["duration_ms"].to_numpy(dtype=float)
    basis = "per invocation" if per_invocation else "per-trial means"
    if len(np.unique(waves)) < 2:
        per_record = float(duration.mean() / max(waves.mean(), 1.0))
        return InvocationCost(0.0, per_record, len(points), math.nan, basis)
    slope, intercept = np.polyfit(waves, duration, 1)
    predicted = intercept + slope * waves
    total = float(((duration - duration.mean()) ** 2).sum())
    r_squared = 1.0 - float(((duration - predicted) ** 2).sum()) / total if total else 1.0
    return InvocationCost(float(intercept), float(slope), len(points), r_squared, basis)


@dataclass(frozen=True)
class CapacityPlan:
    """What the model says one target rate needs, for both architectures."""

    rate_per_s: float
    partitions: int
    """= stream shards."""
    parallelization_factor: int | None
    """Smallest factor whose lanes drain the rate; None if even 10 cannot."""
    batch_concurrency: int
    """Records per batch at once the plan needs (the given one, or more)."""
    lanes: int
    storage_first_concurrency: int
    expected_lag_ms: float
    direct_concurrency: float
    direct_within_account_limit: bool
    storage_first_lambda_gb_s_per_million: float
    direct_lambda_gb_s_per_million: float


def plan_capacity(
    rate_per_s: float,
    cost: InvocationCost,
    *,
    batch_size: int,
    batch_concurrency: int,
    direct_duration_ms: float,
    memory_mb: int = 256,
    account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
    max_batch_concurrency: int = 100,
) -> CapacityPlan:
    """Shards, lanes, concurrency, lag and Lambda GB-seconds for ``rate_per_s`` (a model).

    When even a factor of 10 cannot drain the rate, ``batch_concurrency`` is raised (up to
    ``max_batch_concurrency``) until it can; the plan says which it needs.
    """
    partitions = max(1, math.ceil(rate_per_s * WRITES_PER_REQUEST / PARTITION_WCU_PER_S))
    # Raise the factor first (up to 10); past that, records processed at once per batch.
    while True:
        per_lane = sustained_rate_per_s(
            cost, shards=1, parallelization_factor=1, batch_size=batch_size,
            batch_concurrency=batch_concurrency,
        )  # fmt: skip
        factor = max(1, math.ceil(math.ceil(rate_per_s / per_lane) / partitions))
        if factor <= MAX_PARALLELIZATION_FACTOR or batch_concurrency >= max_batch_concurrency:
            break
        batch_concurrency += 1
    parallelization_factor = factor if factor <= MAX_PARALLELIZATION_FACTOR else None
    lanes = partitions * min(factor, MAX_PARALLELIZATION_FACTOR)
    # Steady state per lane: a batch holds what arrived while the previous one ran.
    per_lane_rate = rate_per_s / lanes
    batch = 1.0
    for _ in range(50):
        duration = batch_duration_ms(cost, batch, batch_concurrency)
        batch = min(float(batch_size), max(1.0, per_lane_rate * duration / 1000.0))
    duration = batch_duration_ms(cost, batch, batch_concurrency)
    # A record waits for the poll, for the batch running when it arrived (half, on average)
    # and for its own batch; a lane that cannot keep up has no steady lag (inf).
    lag = MEAN_POLL_DELAY_MS + 1.5 * duration if parallelization_factor else math.inf
    gb = memory_mb / 1024.0
    storage_gb_s = 1e6 / batch * duration / 1000.0 * gb
    direct_concurrency = rate_per_s * direct_duration_ms / 1000.0
    return CapacityPlan(
        rate_per_s=rate_per_s,
        partitions=partitions,
        parallelization_factor=parallelization_factor,
        batch_concurrency=batch_concurrency,
        lanes=lanes,
        storage_first_concurrency=lanes,
        expected_lag_ms=lag,
        direct_concurrency=direct_concurrency,
        direct_within_account_limit=direct_concurrency <= account_concurrency,
        storage_first_lambda_gb_s_per_million=storage_gb_s,
        direct_lambda_gb_s_per_million=1e6 * direct_duration_ms / 1000.0 * gb,
    )


def plan_table(
    rates: Sequence[float],
    cost: InvocationCost,
    *,
    batch_size: int,
    batch_concurrency: int,
    direct_duration_ms: float,
    memory_mb: int = 256,
    gb_second_price: float = 1.33334e-05,
) -> pd.DataFrame:
    """:func:`plan_capacity` for each rate, one row each (Lambda compute cost per million)."""
    rows = []
    for rate in rates:
        plan = plan_capacity(
            rate, cost, batch_size=batch_size, batch_concurrency=batch_concurrency,
            direct_duration_ms=direct_duration_ms, memory_mb=memory_mb,
        )  # fmt: skip
        rows.append(
            {
                "rate_per_s": rate,
                "shards": plan.partitions,
                "parallelization_factor": plan.parallelization_factor,
                "batch_concurrency": plan.batch_concurrency,
                "lanes": plan.lanes,
                "storage_first_concurrency": plan.storage_first_concurrency,
                "expected_lag_ms": plan.expected_lag_ms,
                "storage_first_compute_per_million": plan.storage_first_lambda_gb_s_per_million
                * gb_second_price,
                "direct_concurrency": plan.direct_concurrency,
                "direct_within_account_limit": plan.direct_within_account_limit,
                "direct_compute_per_million": plan.direct_lambda_gb_s_per_million * gb_second_price,
            }
        )
    return pd.DataFrame(rows)
