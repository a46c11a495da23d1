"""How often the headline quantile intervals cover the truth, by simulation (vectorised numpy).

Latency of a request = multiplier of its trial x (10 ms + Exponential(20 ms)); with ``drift`` the
trial multipliers are 1 + drift x N(0, 1) (trials run under different conditions), without it
1. The truth is the quantile at multiplier 1: what a repeat of the experiment estimates. The
intervals are those of :mod:`analysis.stats`: the exact pooled order-statistic interval alone
("pooled", what the report gave before) and widened by the per-trial Student-t interval
("trials", what it gives now). An unbounded side counts as covering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.stats import ALPHA, _ranks, _t_ppf

__all__ = ["Coverage", "coverage", "true_quantile"]

OFFSET_MS, SCALE_MS = 10.0, 20.0
_BATCH_VALUES = 4_000_000  # values simulated at once (32 MB of float64)


@dataclass(frozen=True)
class Coverage:
    n: int
    trials: int
    drift: float
    q: float
    repetitions: int
    pooled: float
    """share of simulated runs whose pooled exact interval covered the truth"""
    with_trials: float
    """the same for the interval widened by the between-trial variation"""


def true_quantile(q: float) -> float:
    return OFFSET_MS - SCALE_MS * math.log1p(-q)


def coverage(
    n: int,
    trials: int,
    drift: float,
    quantiles: tuple[float, ...] = (0.5, 0.99),
    *,
    repetitions: int = 200,
    seed: int = 1,
) -> list[Coverage]:
    """Coverage of each quantile's 95% intervals over ``repetitions`` simulated runs of n
    requests (per variant) in ``trials`` equal trials."""
    rng = np.random.default_rng(seed)
    per_trial = n // trials
    total = per_trial * trials
    t_factor = _t_ppf(1 - ALPHA / 2, trials - 1) / math.sqrt(trials)
    hits_pooled = dict.fromkeys(quantiles, 0)
    hits_trials = dict.fromkeys(quantiles, 0)
    batch = max(1, _BATCH_VALUES // total)
    done = 0
    while done < repetitions:
        size = min(batch, repetitions - done)
        done += size
        multiplier = 1.0 + drift * rng.standard_normal((size, trials, 1))
        values = multiplier * (OFFSET_MS + rng.exponential(SCALE_MS, (size, trials, per_trial)))
        pooled = np.sort(values.reshape(size, total), axis=1)
        for q in quantiles:
            truth = true_quantile(q)
            estimate = np.quantile(pooled, q, axis=1)
            lower_rank, upper_rank = _ranks(total, q)
            lo = pooled[:, lower_rank - 1] if lower_rank >= 1 else np.full(size, -np.inf)
            hi = pooled[:, upper_rank - 1] if upper_rank <= total else np.full(size, np.inf)
            lo, hi = np.minimum(lo, estimate), np.maximum(hi, estimate)
            hits_pooled[q] += int(((lo <= truth) & (truth <= hi)).sum())
            trial_values = np.quantile(values, q, axis=2)
            half = t_factor * trial_values.std(axis=1, ddof=1)
            wide_lo, wide_hi = np.minimum(lo, estimate - half), np.maximum(hi, estimate + half)
            hits_trials[q] += int(((wide_lo <= truth) & (truth <= wide_hi)).sum())
    return [
        Coverage(
            n=total,
            trials=trials,
            drift=drift,
            q=q,
            repetitions=repetitions,
            pooled=hits_pooled[q] / repetitions,
            with_trials=hits_trials[q] / repetitions,
        )
        for q in quantiles
    ]
