"""Variant vs variant (or run vs run) for each headline statistic: both values, the ratio b/a
with a 95% interval, and a test across trials.

The ratio's interval is built from the two statistics' own 95% intervals (lo_b/hi_a,
hi_b/lo_a): conservative, no resampling. Significance compares the per-trial values of the
statistic with a two-sided Mann–Whitney U test, because requests inside one trial share its
conditions and are not independent; with too few trials the verdict says so.

A side is a :class:`Sample`: its :func:`analysis.stats.describe` figures and its per-trial
statistics. :func:`sample_of` takes them from a frame; :func:`samples` from the engine, per
group, without reading the rows into pandas (the same quantiles, intervals and per-trial
quantiles; the mean and per-trial means from DuckDB's sums, equal to ~1e-15 relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from analysis import engine
from analysis.stats import QUANTILES, describe, mann_whitney

__all__ = ["STATISTICS", "Sample", "compare_groups", "compare_samples", "sample_of", "samples"]

STATISTICS = ("mean", "p50", "p90", "p99", "p999")
COLUMNS = [
    "statistic", "a", "b", "a_value", "b_value", "ratio", "ratio_lo", "ratio_hi",
    "trials_a", "trials_b", "p_value", "verdict",
]  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """One side of a comparison: ``summary`` = :func:`analysis.stats.describe` of its values,
    ``per_trial`` = per statistic of STATISTICS, its value in each trial (pandas' groupby mean
    and quantile, NaN-free trials' values)."""

    summary: dict[str, float]
    per_trial: dict[str, np.ndarray] = field(default_factory=dict)


def sample_of(frame: pd.DataFrame, column: str) -> Sample:
    """The sample of ``column`` of a frame with a ``trial`` column."""
    grouped = frame.groupby("trial", observed=True)[column]
    per_trial = {
        statistic: (
            grouped.mean() if statistic == "mean" else grouped.quantile(QUANTILES[statistic])
        ).to_numpy(dtype=np.float64)
        for statistic in STATISTICS
    }
    return Sample(describe(frame[column]), per_trial)


def samples(
    connection: duckdb.DuckDBPyConnection,
    rows: engine.Rows,
    by: str,
    column: str,
    summaries: pd.DataFrame | None = None,
) -> dict[Any, Sample]:
    """Per value of ``by`` in ``rows`` (which also has ``trial``), the sample of ``column``
    (:func:`sample_of` of that group's rows), from the engine; ``summaries`` = the engine's
    describe_groups of those rows by ``by`` when already computed. A value with no rows is
    absent: use :data:`EMPTY`."""
    if summaries is None:
        summaries = engine.describe_groups(connection, rows, [by], column)
    probabilities = [QUANTILES[name] for name in STATISTICS if name != "mean"]
    trials = engine.group_quantiles(connection, rows, [by, "trial"], column, probabilities)
    with engine.registered(connection, rows) as source:
        means = connection.sql(
            f'SELECT "{by}", trial, avg("{column}") FILTER (WHERE NOT isnan("{column}")) '
            f'AS mean FROM {source} WHERE "{by}" IS NOT NULL AND trial IS NOT NULL '
            "GROUP BY ALL ORDER BY ALL"
        ).df()
    found = {}
    for row in summaries.to_dict(orient="records"):
        key = row.pop(by)
        row["n"] = float(row["n"])
        in_group = trials[by] == key
        per_trial = {
            name: trials.loc[in_group, QUANTILES[name]].to_numpy(dtype=np.float64)
            for name in STATISTICS
            if name != "mean"
        }
        per_trial["mean"] = means.loc[means[by] == key, "mean"].to_numpy(dtype=np.float64)
        found[key] = Sample(row, per_trial)
    return found


EMPTY = Sample(describe(np.array([], dtype=np.float64)))
"""The sample of no values (every statistic NaN: "no data")."""


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def compare_groups(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    column: str,
    *,
    label_a: str,
    label_b: str,
) -> pd.DataFrame:
    """One row per statistic comparing ``column`` of frame_b against frame_a (ratio = b / a).
    Both frames need a ``trial`` column. The verdict is "significant", "not significant",
    "insufficient trials", or "no data"."""
    return compare_samples(
        sample_of(frame_a, column), sample_of(frame_b, column), label_a=label_a, label_b=label_b
    )


def compare_samples(a: Sample, b: Sample, *, label_a: str, label_b: str) -> pd.DataFrame:
    """:func:`compare_groups` of two samples."""
    summary_a, summary_b = a.summary, b.summary
    rows: list[dict[str, object]] = []
    for statistic in STATISTICS:
        a_value, b_value = summary_a[statistic], summary_b[statistic]
        if math.isnan(a_value) or math.isnan(b_value):
            rows.append({"statistic": statistic, "a": label_a, "b": label_b, "verdict": "no data"})
            continue
        test = mann_whitney(a.per_trial[statistic], b.per_trial[statistic])
        rows.append(
            {
                "statistic": statistic,
                "a": label_a,
                "b": label_b,
                "a_value": a_value,
                "b_value": b_value,
                "ratio": _ratio(b_value, a_value),
                "ratio_lo": _ratio(summary_b[f"{statistic}_lo"], summary_a[f"{statistic}_hi"]),
                "ratio_hi": _ratio(summary_b[f"{statistic}_hi"], summary_a[f"{statistic}_lo"]),
                "trials_a": test.n_a,
                "trials_b": test.n_b,
                "p_value": test.p_value,
                "verdict": test.verdict,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
