from __future__ import annotations

import numpy as np
import pytest

from analysis.stats import describe, describe_groups, mann_whitney, quantile_interval


def test_quantile_interval_brackets_the_true_quantile_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    true_p99 = -np.log(0.01)  # Exponential(1)
    hits = 0
    for _ in range(400):
        values = np.sort(rng.exponential(1.0, 2000))
        _, lo, hi = quantile_interval(values, 0.99)
        hits += lo <= true_p99 <= hi
    assert 0.92 <= hits / 400 <= 0.99


def test_describe_small_known_values() -> None:
    row = describe(np.arange(1.0, 101.0))
    assert row["n"] == 100
    assert row["mean"] == pytest.approx(50.5)
    assert row["p50"] == pytest.approx(50.5)
    assert row["p50_lo"] <= 50.5 <= row["p50_hi"]
    assert row["max"] == row["max_lo"] == row["max_hi"] == 100
    # 100 values cannot bound p99 or p99.9 from above: unbounded (NaN), not the sample maximum.
    assert np.isnan(row["p99_hi"]) and np.isnan(row["p999_hi"])
    assert row["p99_lo"] <= row["p99"]


def test_describe_ignores_nan_and_handles_empty() -> None:
    assert describe(np.array([np.nan, 2.0]))["n"] == 1
    assert np.isnan(describe(np.array([]))["p99"])


def test_describe_groups_one_row_per_group() -> None:
    import pandas as pd

    frame = pd.DataFrame({"g": ["a", "a", "b"], "v": [1.0, 3.0, 10.0]})
    table = describe_groups(frame, ["g"], "v")
    assert table["g"].tolist() == ["a", "b"]
    assert table["mean"].tolist() == [2.0, 10.0]


def test_mann_whitney_verdicts() -> None:
    assert mann_whitney([1, 2, 3], [4, 5, 6]).verdict == "insufficient trials"  # min p = 0.1
    assert mann_whitney([1, 2, 3, 4], [5, 6, 7, 8]).verdict == "significant"
    assert mann_whitney([1, 5, 3, 7], [2, 6, 4, 8]).verdict == "not significant"
    assert mann_whitney([], [1.0]).verdict == "insufficient trials"
