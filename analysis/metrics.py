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
    ((found,),) = connection.execute(
        f"SELECT count(*) FROM metrics WHERE variant = ? AND {during}", [variant, *parameters]
    ).fetchall()
    return bool(found)


def _selected(
    variant: str,
    names: tuple[str, ...],
    stat: str,
    during: Sequence[Window] | None,
    *,
    ordered: bool = False,
) -> tuple[str, list[object]]:
    """SQL (value, cloudwatch; with ``ordered`` also read_order) of the variant's metrics named
    ``names`` (any case); when some come from CloudWatch, only its rows of statistic ``stat``."""
    order = ", read_order" if ordered else ""
    source = engine.in_read_order("metrics") if ordered else "metrics"
    window, parameters = _during(during)
    wanted = ", ".join("?" for _ in names)
    query = f"""
        WITH rows_ AS (
            SELECT value, coalesce(source = 'cloudwatch', false) AS cloudwatch,
                   contains(coalesce(dimensions, ''), ?) AS has_stat{order}
            FROM {source}
            WHERE variant = ? AND lower(metric) IN ({wanted}) AND {window}
        )
        SELECT value, cloudwatch{order} FROM rows_
        WHERE NOT (SELECT coalesce(bool_or(cloudwatch), false) FROM rows_)
              OR NOT cloudwatch OR has_stat
    """
    return query, [f'"stat": "{stat}"', variant, *(name.lower() for name in names), *parameters]


def _rows(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    names: tuple[str, ...],
    stat: str,
    during: Sequence[Window] | None = None,
) -> pd.DataFrame:
    """value and cloudwatch (bool) of the selected rows (:func:`_selected`), in read order."""
    query, parameters = _selected(variant, names, stat, during, ordered=True)
    values = connection.execute(
        f"SELECT value, cloudwatch FROM ({query}) ORDER BY read_order", parameters
    ).fetchnumpy()
    return pd.DataFrame(
        {
            "value": np.ma.filled(np.ma.asarray(values["value"]).astype(np.float64), np.nan),
            "cloudwatch": np.asarray(values["cloudwatch"], dtype=bool),
        }
    )


def _exact_sum(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: list[object], value: str
) -> tuple[int, int, float | None, bool]:
    """(rows, rows with a value that is not NaN, their sum or None, any from CloudWatch) of
    ``value`` (SQL over the rows of ``query``). The sum is given only when every value is a
    whole number and their magnitudes add up to under 2^53: then every partial sum is exact,
    so it is the same number in any order (pandas' pairwise sum included); otherwise the
    caller sums the values in read order as pandas did."""
    found = connection.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE NOT isnan({value})),
               coalesce(bool_and({value} = floor({value})) FILTER (WHERE NOT isnan({value})),
                        true),
               coalesce(sum(abs({value})) FILTER (WHERE NOT isnan({value})), 0),
               coalesce(sum({value}) FILTER (WHERE NOT isnan({value})), 0),
               coalesce(bool_or(cloudwatch), false)
        FROM ({query})
        """,
        parameters,
    ).fetchall()  # fetchone would leave the result open and block the connection
    rows, present, whole, magnitude, total, cloudwatch = found[0]
    exact = bool(whole) and float(magnitude) < 2.0**53
    return int(rows), int(present), float(total) if exact else None, bool(cloudwatch)


def metric_total(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    *names: str,
    during: Sequence[Window] | None = None,
) -> float | None:
    """Sum of the metrics' values (CloudWatch: their Sum statistic); None when absent."""
    query, parameters = _selected(variant, names, "Sum", during)
    rows, _, total, _ = _exact_sum(connection, query, parameters, "value")
    if not rows:
        return None
    if total is not None:
        return total
    return float(_rows(connection, variant, names, "Sum", during)["value"].sum())


def metric_mean(
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    name: str,
    during: Sequence[Window] | None = None,
) -> float:
    """Mean per observation (CloudWatch: the Average statistic, averaged); NaN when absent."""
    query, parameters = _selected(variant, (name,), "Average", during)
    rows, present, total, _ = _exact_sum(connection, query, parameters, "value")
    if not rows:
        return math.nan
    if total is not None:
        return total / present if present else math.nan  # pandas: the sum / the count
    return float(_rows(connection, variant, (name,), "Average", during)["value"].mean())


@dataclass(frozen=True)
class LambdaUsage:
    invocations: float
    billed_ms: float
    exact: bool
    """True when every invocation's duration was recorded (local); False for averages."""


def lambda_usage(connection: duckdb.DuckDBPyConnection, variant: str) -> LambdaUsage | None:
    """Invocations and billed milliseconds (each duration rounded up to 1 ms), or None."""
    invocations = metric_total(connection, variant, "Invocations")
    query, parameters = _selected(variant, ("Duration",), "Average", None)
    durations, _, billed_durations, from_cloudwatch = _exact_sum(
        connection, query, parameters, "ceil(value)"
    )
    if invocations is None or not durations:
        return None
    if from_cloudwatch:
        # Per-period averages: each invocation is billed its duration rounded up, ~ +0.5 ms.
        averages = _rows(connection, variant, ("Duration",), "Average")
        inits = _rows(connection, variant, ("InitDuration",), "Average")
        billed = invocations * (float(averages["value"].mean()) + 0.5)
        # INIT is billed too: per-invocation init figures (the handlers' logs) add exactly.
        billed += float(np.ceil(inits.loc[~inits["cloudwatch"], "value"]).sum())
        return LambdaUsage(invocations, billed, exact=False)
    init_query, init_parameters = _selected(variant, ("InitDuration",), "Average", None)
    _, _, billed_inits, _ = _exact_sum(connection, init_query, init_parameters, "ceil(value)")
    if billed_durations is None or billed_inits is None:  # beyond 2^53 ms: sum as pandas did
        durations_frame = _rows(connection, variant, ("Duration",), "Average")
        inits_frame = _rows(connection, variant, ("InitDuration",), "Average")
        billed_durations = float(np.ceil(durations_frame["value"]).sum())
        billed_inits = float(np.ceil(inits_frame["value"]).sum())
    return LambdaUsage(invocations, float(billed_durations + billed_inits), exact=True)
