"""analysis.stats computes its distributions with scipy.special; scipy.stats is the oracle, and
every figure must equal it bit for bit (``==``, not approx), so summary.json does not move."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from analysis.stats import (
    _Z,
    ALPHA,
    _binom_ppf,
    _mann_whitney_p,
    _ranks,
    _t_ppf,
    mann_whitney,
)

REPOSITORY = Path(__file__).resolve().parents[2]
QUANTILE_PROBABILITIES = (0.5, 0.9, 0.95, 0.99, 0.999, 0.025, 0.975, 0.001, 0.1, 0.3)


def test_report_imports_do_not_import_scipy_stats() -> None:
    code = (
        "import sys, analysis.cli, analysis.report, analysis.analyze; "
        "print(sorted(name for name in sys.modules if name.startswith('scipy.stats')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_normal_quantile_is_scipy_norm_ppf() -> None:
    assert float(scipy_stats.norm.ppf(1 - ALPHA / 2)) == _Z


@pytest.mark.parametrize("q", QUANTILE_PROBABILITIES)
def test_ranks_are_scipy_binom_ppf_for_n_up_to_2000(q: float) -> None:
    n = np.arange(1, 2001)
    lower = scipy_stats.binom.ppf(ALPHA / 2, n, q).astype(int)
    upper = scipy_stats.binom.ppf(1 - ALPHA / 2, n, q).astype(int) + 1
    assert [_ranks(int(size), q) for size in n] == list(zip(lower, upper, strict=True))


@pytest.mark.parametrize(
    ("n", "q"),
    # Where the public ceil(special.bdtrik) recipe is one rank off scipy.stats.binom.ppf.
    [
        (12_606_586, 0.5),
        (17_437_248, 0.9),
        (5_045_732, 0.95),
        (13_319_332, 0.99),
        (7_202_277, 0.999),
    ],
)
def test_ranks_are_scipy_binom_ppf_for_millions_of_values(n: int, q: float) -> None:
    for probability in (ALPHA / 2, 1 - ALPHA / 2):
        assert _binom_ppf(probability, n, q) == int(scipy_stats.binom.ppf(probability, n, q))


def test_ranks_are_scipy_binom_ppf_for_random_large_n() -> None:
    rng = np.random.default_rng(14)
    sizes = rng.integers(2000, 50_000_000, 300)
    for n, q in zip(sizes, rng.choice(QUANTILE_PROBABILITIES, 300), strict=True):
        lower, upper = _ranks(int(n), float(q))
        assert lower == int(scipy_stats.binom.ppf(ALPHA / 2, n, q))
        assert upper == int(scipy_stats.binom.ppf(1 - ALPHA / 2, n, q)) + 1


@pytest.mark.parametrize("probability", [0.975, 0.95, 0.995, 0.9, 0.6, 0.025])
def test_t_quantile_is_scipy_t_ppf(probability: float) -> None:
    df = [*range(1, 201), 0.5, 2.5, 1e6]
    assert [_t_ppf(probability, d) for d in df] == [
        float(scipy_stats.t.ppf(probability, d)) for d in df
    ]


def test_t_quantile_without_degrees_of_freedom_is_nan() -> None:
    assert np.isnan(_t_ppf(0.975, 0)) and np.isnan(scipy_stats.t.ppf(0.975, 0))


def _scipy_p(first: np.ndarray, second: np.ndarray) -> float:
    return float(scipy_stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)


def _sample_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Small samples of every shape: floats (no ties), integers (ties), equal samples, one side
    all greater, all tied; plus larger ones on the asymptotic side of scipy's method choice."""
    rng = np.random.default_rng(1414)
    pairs = []
    for n1 in range(1, 13):
        for n2 in range(1, 13):
            for _ in range(5):
                pairs.append((rng.normal(size=n1), rng.normal(0.5, size=n2)))
            for _ in range(4):
                pairs.append(
                    (rng.integers(0, 6, n1).astype(float), rng.integers(0, 6, n2).astype(float))
                )
            pairs.append((rng.exponential(size=n1), rng.exponential(size=n2) + 10.0))
            pairs.append((rng.exponential(size=n1) + 10.0, rng.exponential(size=n2)))
            pairs.append((np.full(n1, 3.0), np.full(n2, 3.0)))
            if n1 == n2:
                same = rng.normal(size=n1)
                pairs.append((same, same.copy()))
    for _ in range(150):
        n1, n2 = rng.integers(9, 40, 2)
        pairs.append((rng.normal(size=n1), rng.normal(0.3, size=n2)))
        pairs.append((rng.integers(0, 20, n1) * 0.1, rng.integers(0, 20, n2) * 0.1))
    # Exact side with one sample small and the other long; p-values near 0 and near 1.
    pairs.append((rng.normal(size=3), rng.normal(size=60)))
    pairs.append((np.arange(8.0), np.arange(8.0, 70.0)))
    pairs.append((np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.5, 2.5, 4.0])))
    return pairs


def test_mann_whitney_p_is_scipy_mannwhitneyu_bit_for_bit() -> None:
    pairs = _sample_pairs()
    assert len(pairs) > 2000
    mismatches = [
        (first, second, ours, theirs)
        for first, second in pairs
        if (ours := _mann_whitney_p(first, second)) != (theirs := _scipy_p(first, second))
    ]
    assert mismatches == []


def test_mann_whitney_verdicts_follow_the_p_value() -> None:
    # 5 vs 5 all apart: exact p = 2/252 < 0.05; 3 vs 3 cannot reach 0.05 at all.
    apart = mann_whitney(np.arange(5.0), np.arange(10.0, 15.0))
    assert apart.p_value == _scipy_p(np.arange(5.0), np.arange(10.0, 15.0)) == 2 / 252
    assert apart.verdict == "significant"
    assert mann_whitney(np.arange(3.0), np.arange(3.0, 6.0)).verdict == "insufficient trials"
    mixed = mann_whitney([1.0, 4.0, 2.0, 5.0, 3.0], [1.5, 3.5, 2.5, 4.5, 0.5])
    assert mixed.verdict == "not significant" and mixed.p_value == _scipy_p(
        np.array([1.0, 4.0, 2.0, 5.0, 3.0]), np.array([1.5, 3.5, 2.5, 4.5, 0.5])
    )
