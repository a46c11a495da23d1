from __future__ import annotations

import numpy as np
import pytest

from analysis.coverage import coverage
from analysis.stats import describe, describe_groups, mann_whitney, n_for_bounded, quantile_interval


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


@pytest.mark.parametrize("n", [20, 100, 500, 5000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_quantile_interval_matches_scipy_quantile_test(n: int, q: float) -> None:
    """scipy.stats.quantile_test is the oracle: same order statistics, same unbounded sides."""
    from scipy import stats as scipy_stats

    values = np.sort(np.random.default_rng(n).exponential(1.0, n))
    _, lo, hi = quantile_interval(values, q)
    oracle = scipy_stats.quantile_test(values, q=0, p=q).confidence_interval(0.95)
    oracle_lo = oracle.low if np.isfinite(oracle.low) else np.nan
    oracle_hi = oracle.high if np.isfinite(oracle.high) else np.nan
    assert np.isnan(lo) == np.isnan(oracle_lo) and np.isnan(hi) == np.isnan(oracle_hi)
    if not np.isnan(hi):
        # scipy's two one-sided 97.5% bounds: the same order statistic or the next one out.
        assert (
            hi >= oracle_hi
            and np.searchsorted(values, hi) - np.searchsorted(values, oracle_hi) <= 1
        )
    if not np.isnan(lo):
        assert (
            lo <= oracle_lo
            and np.searchsorted(values, oracle_lo) - np.searchsorted(values, lo) <= 1
        )


def test_n_for_bounded() -> None:
    assert n_for_bounded(0.99) == 368 and n_for_bounded(0.999) == 3688
    values = np.sort(np.random.default_rng(0).exponential(1.0, 368))
    assert not np.isnan(quantile_interval(values, 0.99)[2])
    assert np.isnan(quantile_interval(values[:-1], 0.99)[2])


@pytest.mark.parametrize("n", [500, 50_000])
@pytest.mark.parametrize("drift", [0.0, 0.05])
def test_headline_intervals_cover_p50_and_p99(n: int, drift: float) -> None:
    """Simulated coverage of the between-trial interval >= 90% (4 trials; the full table with
    1,000 runs per cell: scripts/coverage.py). Pooled requests alone fall short with drift."""
    rows = coverage(n, 4, drift, (0.5, 0.99), repetitions=200, seed=11)
    for row in rows:
        assert row.with_trials >= 0.90, row
    if drift and n == 50_000:
        assert min(row.pooled for row in rows) < 0.80  # the audit's finding, reproduced


def test_describe_with_trials_is_the_simulated_interval() -> None:
    """The simulation's vectorised interval and describe(values, trials) agree on one sample."""
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(5)
    trials = np.repeat(np.arange(4), 250)
    values = (1 + 0.05 * rng.standard_normal(4))[trials] * (10 + rng.exponential(20, 1000))
    row = describe(values, trials)
    assert row["trials"] == 4
    per_trial = [np.quantile(values[trials == t], 0.5) for t in range(4)]
    half = scipy_stats.t.ppf(0.975, 3) * np.std(per_trial, ddof=1) / 2
    _, lo, hi = quantile_interval(np.sort(values), 0.5)
    assert row["p50_lo"] == pytest.approx(min(lo, row["p50"] - half))
    assert row["p50_hi"] == pytest.approx(max(hi, row["p50"] + half))
