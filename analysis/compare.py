"""Variant vs variant (or run vs run) for each headline statistic: both values, the ratio b/a
with a 95% interval, and a test across trials.

The ratio's interval is built from the two statistics' own 95% intervals (lo_b/hi_a,
hi_b/lo_a): conservative, no resampling. Significance compares the per-trial values of the
statistic with a two-sided Mann–Whitney U test, because requests inside one trial share its
conditions and are not independent; with too few trials the verdict says so.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.stats import QUANTILES, describe, mann_whitney

__all__ = ["STATISTICS", "compare_groups"]

STATISTICS = ("mean", "p50", "p90", "p99", "p999")
COLUMNS = [
    "statistic", "a", "b", "a_value", "b_value", "ratio", "ratio_lo", "ratio_hi",
    "trials_a", "trials_b", "p_value", "verdict",
]  # fmt: skip


def _per_trial(frame: pd.DataFrame, column: str, statistic: str) -> pd.Series:
    grouped = frame.groupby("trial", observed=True)[column]
    if statistic == "mean":
        return grouped.mean()
    return grouped.quantile(QUANTILES[statistic])


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
    summary_a, summary_b = describe(frame_a[column]), describe(frame_b[column])
    rows: list[dict[str, object]] = []
    for statistic in STATISTICS:
        a_value, b_value = summary_a[statistic], summary_b[statistic]
        if math.isnan(a_value) or math.isnan(b_value):
            rows.append({"statistic": statistic, "a": label_a, "b": label_b, "verdict": "no data"})
            continue
        test = mann_whitney(
            _per_trial(frame_a, column, statistic), _per_trial(frame_b, column, statistic)
        )
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
