"""Reading the METRICS table the same way whatever wrote it.

The local stage logs one row per observation (a Duration per invocation, an Invocations of 1);
CloudWatch gives one row per period and statistic (``dimensions.stat``: Sum, Average, p99...).
These helpers turn both into the totals and means the analysis needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LambdaUsage", "lambda_usage", "metric_mean", "metric_total"]


def _rows(metrics: pd.DataFrame, variant: str, names: tuple[str, ...], stat: str) -> pd.DataFrame:
    wanted = metrics["metric"].str.lower().isin([name.lower() for name in names])
    rows = metrics.loc[(metrics["variant"] == variant) & wanted]
    from_cloudwatch = rows["source"] == "cloudwatch"
    if not from_cloudwatch.any():
        return rows
    has_stat = rows["dimensions"].fillna("").str.contains(f'"stat": "{stat}"', regex=False)
    return rows.loc[~from_cloudwatch | has_stat]


def metric_total(metrics: pd.DataFrame, variant: str, *names: str) -> float | None:
    """Sum of the metrics' values (CloudWatch: their Sum statistic); None when absent."""
    rows = _rows(metrics, variant, names, "Sum")
    return float(rows["value"].sum()) if len(rows) else None


def metric_mean(metrics: pd.DataFrame, variant: str, name: str) -> float:
    """Mean per observation (CloudWatch: the Average statistic, averaged); NaN when absent."""
    rows = _rows(metrics, variant, (name,), "Average")
    return float(rows["value"].mean()) if len(rows) else math.nan


@dataclass(frozen=True)
class LambdaUsage:
    invocations: float
    billed_ms: float
    exact: bool
    """True when every invocation's duration was recorded (local); False for averages."""


def lambda_usage(metrics: pd.DataFrame, variant: str) -> LambdaUsage | None:
    """Invocations and billed milliseconds (each duration rounded up to 1 ms), or None."""
    invocations = metric_total(metrics, variant, "Invocations")
    durations = _rows(metrics, variant, ("Duration",), "Average")
    if invocations is None or durations.empty:
        return None
    inits = _rows(metrics, variant, ("InitDuration",), "Average")
    if (durations["source"] == "cloudwatch").any():
        # Per-period averages: each invocation is billed its duration rounded up, ~ +0.5 ms.
        billed = invocations * (float(durations["value"].mean()) + 0.5)
        # INIT is billed too: per-invocation init figures (the handlers' logs) add exactly.
        billed += float(np.ceil(inits.loc[inits["source"] != "cloudwatch", "value"]).sum())
        return LambdaUsage(invocations, billed, exact=False)
    billed = float(np.ceil(durations["value"]).sum() + np.ceil(inits["value"]).sum())
    return LambdaUsage(invocations, billed, exact=True)
