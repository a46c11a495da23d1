"""Reading the METRICS table the same way whatever wrote it.

The local stage logs one row per observation (a Duration per invocation, an Invocations of 1);
CloudWatch gives one row per period and statistic (``dimensions.stat``: Sum, Average, p99...).
These helpers turn both into the totals and means the analysis needs. They read the engine's
``metrics`` view (``engine.register_run_folder``): the rows are selected in the engine and
only the matching values come back, in the order pandas read them, so their float sums and
means are the ones a pandas pass over the whole table gave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from analysis import engine

__all__ = [
    "LambdaUsage",
    "Window",
    "has_rows_during",
    "lambda_usage",
    "metric_mean",
    "metric_total",
]

Window = tuple[float, float]
"""(start, end) epoch ms, both included: metrics observed during a stage."""


def _during(windows: Sequence[Window] | None) -> tuple[str, list[object]]:
    if not windows:
        return "true", []
    clauses = " OR ".join("(timestamp_ms >= ? AND timestamp_ms <= ?)" for _ in windows)
    return f"({clauses})", [bound for window in windows for bound in window]


def has_rows_during(
    connection: duckdb.DuckDBPyConnection, variant: str, windows: Sequence[Window]
) -> bool:
    """Whether any metric of ``variant`` was observed inside one of ``windows``."""
    during, parameters = _during(windows)
    found = connection.execute(
        f"SELECT count(*) FROM metrics WHERE variant = ? AND {during}", [variant, *parameters]
    ).fetchone()
    return bool(found and found[0])


def _rows(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    names: tuple[str, ...],
    stat: str,
    during: Sequence[Window] | None = None,
) -> pd.DataFrame:
    """value and cloudwatch (bool) of the variant's metrics named ``names`` (any case), in read
    order; when some come from CloudWatch, only its rows of statistic ``stat``."""
    window, parameters = _during(during)
    wanted = ", ".join("?" for _ in names)
    values = connection.execute(
        f"""
        WITH rows_ AS (
            SELECT value, coalesce(source = 'cloudwatch', false) AS cloudwatch,
                   contains(coalesce(dimensions, ''), ?) AS has_stat, read_order
            FROM {engine.in_read_order("metrics")}
            WHERE variant = ? AND lower(metric) IN ({wanted}) AND {window}
        )
        SELECT value, cloudwatch FROM rows_
        WHERE NOT (SELECT coalesce(bool_or(cloudwatch), false) FROM rows_)
              OR NOT cloudwatch OR has_stat
        ORDER BY read_order
        """,
        [f'"stat": "{stat}"', variant, *(name.lower() for name in names), *parameters],
    ).fetchnumpy()
    return pd.DataFrame(
        {
            "value": np.ma.filled(np.ma.asarray(values["value"]).astype(np.float64), np.nan),
            "cloudwatch": np.asarray(values["cloudwatch"], dtype=bool),
        }
    )


def metric_total(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    *names: str,
    during: Sequence[Window] | None = None,
) -> float | None:
    """Sum of the metrics' values (CloudWatch: their Sum statistic); None when absent."""
    rows = _rows(connection, variant, names, "Sum", during)
    return float(rows["value"].sum()) if len(rows) else None


def metric_mean(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    name: str,
    during: Sequence[Window] | None = None,
) -> float:
    """Mean per observation (CloudWatch: the Average statistic, averaged); NaN when absent."""
    rows = _rows(connection, variant, (name,), "Average", during)
    return float(rows["value"].mean()) if len(rows) else math.nan


@dataclass(frozen=True)
class LambdaUsage:
    invocations: float
    billed_ms: float
    exact: bool
    """True when every invocation's duration was recorded (local); False for averages."""


def lambda_usage(connection: duckdb.DuckDBPyConnection, variant: str) -> LambdaUsage | None:
    """Invocations and billed milliseconds (each duration rounded up to 1 ms), or None."""
    invocations = metric_total(connection, variant, "Invocations")
    durations = _rows(connection, variant, ("Duration",), "Average")
    if invocations is None or durations.empty:
        return None
    inits = _rows(connection, variant, ("InitDuration",), "Average")
    if durations["cloudwatch"].any():
        # Per-period averages: each invocation is billed its duration rounded up, ~ +0.5 ms.
        billed = invocations * (float(durations["value"].mean()) + 0.5)
        # INIT is billed too: per-invocation init figures (the handlers' logs) add exactly.
        billed += float(np.ceil(inits.loc[~inits["cloudwatch"], "value"]).sum())
        return LambdaUsage(invocations, billed, exact=False)
    billed = float(np.ceil(durations["value"]).sum() + np.ceil(inits["value"]).sum())
    return LambdaUsage(invocations, billed, exact=True)
