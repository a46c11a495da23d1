"""Distribution summaries with 95% confidence intervals, and tests across trials.

Quantile intervals use the distribution-free binomial order-statistic method: for the q-quantile
of n values, the number of values below the true quantile is Binomial(n, q), so the order
statistics at that binomial's 2.5% and 97.5% points bracket it with ~95% confidence. It is
exact for any continuous distribution, needs no resampling and costs one sort, so a million rows
stay fast and the answer is deterministic. When that binomial's upper point lies beyond the
sample (n < 368 for p99, n < 3,688 for p99.9: see :func:`n_for_bounded`), the sample cannot bound
the quantile from above and the bound is NaN ("unbounded"), never the sample maximum.

Requests of one trial share its conditions, so pooled requests understate the uncertainty when
trials drift. :func:`describe` with ``trials`` widens each quantile's interval to cover the
between-trial variation too: the union of the exact pooled interval and a Student-t interval
over the per-trial quantiles (estimate +- t(k-1) x sd / sqrt(k)), k = trials. With one trial
the between-trial part cannot be measured and only the pooled interval is given.
``scripts/coverage.py`` prints the measured coverage of both (>= 90% for p50 and p99 at n = 500
and 50,000 with and without 5% drift between 4 trials; the pooled one alone is not).

The mean's interval is the normal (CLT) interval; the maximum is reported as observed (its
interval is the value itself).

The distributions come from ``scipy.special`` with the float operations of scipy 1.17.1's
``scipy.stats`` (``norm.ppf``, ``t.ppf``, ``binom.ppf``, ``mannwhitneyu``), so every figure is the
one ``scipy.stats`` gives, bit for bit (tests/analysis/test_stats_special.py), without importing
``scipy.stats``: that import alone cost each report about 0.45 s and 50 MB.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

# Private, but it is the very ufunc behind scipy.stats.binom.ppf (scipy is pinned); the public
# ceil(bdtrik) recipe differs from it by one rank for about 1 in 30,000 n in the millions.
from scipy.special import _ufuncs as special_ufuncs

__all__ = [
    "ALPHA",
    "QUANTILES",
    "Significance",
    "describe",
    "describe_groups",
    "mann_whitney",
    "n_for_bounded",
    "quantile_interval",
    "trial_interval",
]

ALPHA = 0.05
# Headline quantiles: name -> probability. "p999" is the 99.9th percentile.
QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
_Z = float(special.ndtri(1 - ALPHA / 2))  # scipy.stats.norm.ppf(0.975)


def _binom_ppf(probability: float, n: int, p: float) -> int:
    """scipy.stats.binom.ppf(probability, n, p) for 0 < probability < 1, n >= 0, 0 <= p <= 1:
    the smallest k with P(X <= k) >= probability for X ~ Binomial(n, p)."""
    return int(special_ufuncs._binom_ppf(probability, n, p))


def _t_ppf(probability: float, df: float) -> float:
    """scipy.stats.t.ppf(probability, df) for 0 < probability < 1 (NaN unless df > 0)."""
    return float(special.stdtrit(df, probability)) if df > 0 else math.nan


def _ranks(n: int, q: float) -> tuple[int, int]:
    """1-based ranks of the order statistics bracketing the q-quantile of n values with 95%;
    a rank below 1 or above n means that side is not bounded by the sample."""
    lower_rank = _binom_ppf(ALPHA / 2, n, q)
    upper_rank = _binom_ppf(1 - ALPHA / 2, n, q) + 1
    return lower_rank, upper_rank


@functools.cache
def n_for_bounded(q: float) -> int:
    """The smallest n whose sample bounds the q-quantile's 95% interval on both sides.

    Both conditions are monotone in n (the lower rank is >= 1 once (1-q)^n < ALPHA/2, the upper
    rank <= n once q^n <= ALPHA/2), so a bisection finds the same n as counting up from 1."""

    def bounded(n: int) -> bool:
        lower_rank, upper_rank = _ranks(n, q)
        return lower_rank >= 1 and upper_rank <= n

    high = 1
    while not bounded(high):
        high *= 2
    low = high // 2  # not bounded (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        if bounded(middle):
            high = middle
        else:
            low = middle
    return high


def quantile_interval(sorted_values: np.ndarray, q: float) -> tuple[float, float, float]:
    """(estimate, lo, hi) of the q-quantile of already sorted values (binomial order
    statistics); lo or hi is NaN when the sample is too small to bound that side."""
    n = len(sorted_values)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    estimate = float(np.quantile(sorted_values, q, method="linear"))
    lower_rank, upper_rank = _ranks(n, q)
    lo = min(float(sorted_values[lower_rank - 1]), estimate) if lower_rank >= 1 else math.nan
    hi = max(float(sorted_values[upper_rank - 1]), estimate) if upper_rank <= n else math.nan
    return (estimate, lo, hi)


def trial_interval(
    estimate: float, lo: float, hi: float, per_trial: np.ndarray
) -> tuple[float, float]:
    """Widen the pooled interval (lo, hi) of ``estimate`` to the Student-t interval over the
    per-trial values of the statistic (see the module docstring); NaN bounds stay unbounded."""
    values = np.asarray(per_trial, dtype=np.float64)
    values = values[np.isfinite(values)]
    k = len(values)
    if k < 2 or math.isnan(estimate):
        return lo, hi
    half = _t_ppf(1 - ALPHA / 2, k - 1) * float(values.std(ddof=1)) / math.sqrt(k)
    return min(lo, estimate - half), max(hi, estimate + half)


def describe(
    values: np.ndarray | pd.Series, trials: np.ndarray | pd.Series | None = None
) -> dict[str, float]:
    """n, mean and the headline quantiles and max, each with ``_lo``/``_hi`` 95% bounds (NaN:
    unbounded). With ``trials`` (the trial of each value), quantile intervals also cover the
    variation between trials (:func:`trial_interval`) and ``trials`` counts them."""
    array = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(array)
    order = np.argsort(array[finite], kind="stable")
    labels = None if trials is None else np.asarray(trials)[finite][order]
    array = array[finite][order]
    n = len(array)
    row: dict[str, float] = {"n": float(n)}
    if n == 0:
        for name in ("mean", *QUANTILES, "max"):
            row[name] = row[f"{name}_lo"] = row[f"{name}_hi"] = math.nan
        return row
    mean = float(array.mean())
    half_width = _Z * float(array.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    row.update(mean=mean, mean_lo=mean - half_width, mean_hi=mean + half_width)
    groups = []
    if labels is not None:
        # Values are sorted, so each trial's values (by a stable sort on its label) stay sorted.
        by_trial = np.argsort(labels, kind="stable")
        sorted_labels = labels[by_trial]
        cuts = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1
        groups = np.split(array[by_trial], cuts)
        row["trials"] = float(len(groups))
    for name, q in QUANTILES.items():
        estimate, lo, hi = quantile_interval(array, q)
        if len(groups) >= 2:
            per_trial = np.array([np.quantile(group, q) for group in groups])
            lo, hi = trial_interval(estimate, lo, hi, per_trial)
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = estimate, lo, hi
    row["max"] = row["max_lo"] = row["max_hi"] = float(array[-1])
    return row


def describe_groups(
    frame: pd.DataFrame, by: list[str], column: str, trial_column: str | None = None
) -> pd.DataFrame:
    """:func:`describe` of ``column`` per group of ``by``; one row per group. With
    ``trial_column``, intervals account for between-trial variation."""
    columns = [*by, "n", "mean", "mean_lo", "mean_hi"]
    for name in (*QUANTILES, "max"):
        columns += [name, f"{name}_lo", f"{name}_hi"]
    rows = []
    if len(frame):
        for key, group in frame.groupby(by, sort=True, observed=True):
            keys = key if isinstance(key, tuple) else (key,)
            trials = group[trial_column] if trial_column else None
            rows.append({**dict(zip(by, keys, strict=True)), **describe(group[column], trials)})
    if trial_column:
        columns.insert(len(by) + 1, "trials")
    result = pd.DataFrame(rows, columns=columns)
    result["n"] = result["n"].astype("int64")
    if trial_column:
        result["trials"] = result["trials"].fillna(1).astype("int64")
    return result


@dataclass(frozen=True)
class Significance:
    """Outcome of a two-sided Mann–Whitney U test on per-trial statistics."""

    n_a: int
    n_b: int
    p_value: float
    verdict: str
    """"significant", "not significant" or "insufficient trials"."""


def mann_whitney(a: np.ndarray | pd.Series, b: np.ndarray | pd.Series) -> Significance:
    """Two-sided Mann–Whitney U across trials. When even the most extreme ordering could not
    reach ALPHA with this many trials (e.g. 3 vs 3: p >= 0.1), the verdict is "insufficient
    trials" rather than a p-value that can never be significant."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    first, second = first[np.isfinite(first)], second[np.isfinite(second)]
    n_a, n_b = len(first), len(second)
    if n_a == 0 or n_b == 0 or 2 / math.comb(n_a + n_b, n_a) >= ALPHA:
        return Significance(n_a, n_b, math.nan, "insufficient trials")
    p_value = _mann_whitney_p(first, second)
    verdict = "significant" if p_value < ALPHA else "not significant"
    return Significance(n_a, n_b, p_value, verdict)


def _mann_whitney_p(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided p-value of ``scipy.stats.mannwhitneyu(first, second)`` (method "auto", with
    continuity correction) for non-empty float64 samples without NaN, by the same operations
    as scipy 1.17.1 (scipy/stats/_mannwhitneyu.py): the exact null distribution unless both
    samples have more than 8 values or any value is tied, else the normal approximation."""
    n1, n2 = len(first), len(second)
    combined = np.concatenate([first, second])
    ranks, tie_counts = _average_ranks(combined)
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    u = np.maximum(u1, n1 * n2 - u1)  # the larger statistic: its upper tail, doubled
    if (n1 > 8 and n2 > 8) or bool(np.any(tie_counts > 1)):
        n = n1 + n2
        tie_term = np.sum(tie_counts**3 - tie_counts)
        s = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        numerator = u - n1 * n2 / 2 - 0.5  # continuity correction
        with np.errstate(divide="ignore", invalid="ignore"):  # all tied: s = 0
            z = numerator / s
        p = special.ndtr(-z)
    else:
        p = _mann_whitney_exact_sf(int(u), n1, n2)
    return float(np.clip(p * 2, 0.0, 1.0))


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks of ``values`` (1-based, ties share their mean rank) and the size of each
    group of equal values (as scipy's ``_rankdata(..., return_ties=True)``: zeros elsewhere)."""
    n = len(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first_of_group = np.concatenate([[True], ordered[:-1] != ordered[1:]])
    starts = np.flatnonzero(first_of_group)
    counts = np.diff(starts, append=n)
    group_ranks = np.arange(1, n + 1, dtype=np.float64)[first_of_group] + (counts - 1) / 2
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(group_ranks, counts)
    tie_counts = np.zeros(n, dtype=np.float64)
    tie_counts[first_of_group] = counts
    return ranks, tie_counts


def _mann_whitney_exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) under the null for u >= n1 * n2 / 2, by scipy's ``_MWU.sf``: the symmetric
    lower tail P(U <= n1 * n2 - u) from the cumulated frequencies of each U (Löffler's
    recurrence over the sigma array), in scipy's float operations."""
    n1, n2 = min(n1, n2), max(n1, n2)
    max_u = n1 * n2 - u
    sigma = np.zeros(max_u + 1, dtype=int)
    for d in np.arange(1, n1 + 1):
        sigma[np.arange(d, max_u + 1, d)] += d
    for d in np.arange(n2 + 1, n2 + n1 + 1):
        sigma[np.arange(d, max_u + 1, d)] -= d
    sigma = sigma[1:]
    # Counts of orderings per U, in uint64 until they overflow it (as scipy does).
    configurations: np.ndarray = np.zeros(max_u + 1, dtype=np.uint64)
    is_uint = True
    uint_max = np.iinfo(np.uint64).max
    configurations[0] = 1
    for step in np.arange(1, max_u + 1):
        new_value = np.dot(configurations[:step], sigma[step - 1 :: -1]) / step
        if new_value > uint_max and is_uint:
            configurations = configurations.astype(float)
            is_uint = False
        configurations[step] = new_value
    frequencies = configurations / special.binom(n1 + n2, n1)
    return float(np.cumsum(frequencies)[max_u])
