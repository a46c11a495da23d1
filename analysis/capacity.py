"""Capacity from a staircase of offered rates: per stage latency/errors, the knee, Lambda
concurrency at the knee (Little's law) and storage-first's drain rate and backlog growth.

The knee ("capacity") is the highest offered rate R such that every stage offered at or below R
keeps p99 under the SLO and the error share under the threshold: a stage that passes above a
failing one does not count, because a plan cannot rely on it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.lag import TERMINAL
from analysis.latency import SUCCESS_OUTCOMES, headline_rows
from analysis.metrics import metric_mean

__all__ = ["concurrency_at_knee", "knee", "stage_table", "stage_windows"]

STAGE_COLUMNS = [
    "variant", "stage", "offered_per_s", "n", "achieved_per_s", "p99_ms", "error_share",
    "passes", "accepted_per_s", "processed_per_s", "backlog_growth_per_s", "keeps_up",
]  # fmt: skip
# Processing keeps up with a stage when its backlog grows by at most this share of the offered
# rate (or 1 request/s, whichever is larger): a little growth is requests still in flight.
KEEP_UP_SHARE = 0.05


def stage_windows(client: pd.DataFrame) -> pd.DataFrame:
    """Each stage's time window per variant and trial: start, end (epoch ms; client wall clock
    ~ server wall clock) and rate. The last request's own inter-arrival gap belongs to it."""
    rows = client.loc[client["stage"].notna()]
    windows = (
        rows.groupby(["variant", "trial", "stage"], observed=True)
        .agg(
            start=("intended_at_ms", "min"),
            end=("intended_at_ms", "max"),
            rate=("target_rate_per_s", "median"),
        )
        .reset_index()
    )
    windows["end"] += 1000 / windows["rate"].where(windows["rate"] > 0)
    windows["end"] = windows["end"].fillna(windows["start"])
    return windows


def stage_table(
    client: pd.DataFrame, server: pd.DataFrame, *, slo_p99_ms: float, error_threshold: float
) -> pd.DataFrame:
    """One row per variant and load stage: offered and achieved rate, p99 latency, error share,
    whether the stage meets the SLO, and server-side accepted/processed rates in its window."""
    rows = headline_rows(
        client,
        [
            "variant",
            "trial",
            "stage",
            "intended_at_ms",
            "outcome",
            "latency_ms",
            "target_rate_per_s",
        ],
    )
    rows = rows.loc[rows["stage"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    windows = stage_windows(rows)
    # Sorted server times per (variant, trial): counting inside a window is two binary searches.
    times: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for (variant, trial), items in server.groupby(["variant", "trial"], observed=True):
        done = items["status"].isin(TERMINAL)
        times[(str(variant), int(trial))] = (
            np.sort(items["accepted_at_ms"].to_numpy(dtype=np.float64)),
            np.sort(items.loc[done, "processed_at_ms"].dropna().to_numpy(dtype=np.float64)),
        )
    empty = np.empty(0)
    result = []
    for (variant, stage), group in rows.groupby(["variant", "stage"], observed=True):
        this_stage = windows.loc[(windows["variant"] == variant) & (windows["stage"] == stage)]
        seconds = max(float(((this_stage["end"] - this_stage["start"]) / 1000).sum()), 1e-9)
        accepted = processed = 0
        for window in this_stage.itertuples(index=False):
            accepted_at, processed_at = times.get((str(variant), int(window.trial)), (empty, empty))
            bounds = [window.start, window.end]
            accepted += int(np.diff(np.searchsorted(accepted_at, bounds, side="left"))[0])
            processed += int(np.diff(np.searchsorted(processed_at, bounds, side="left"))[0])
        success = group["outcome"].isin(SUCCESS_OUTCOMES)
        p99 = float(group["latency_ms"].quantile(0.99))
        error_share = float((~success).mean())
        result.append(
            {
                "variant": variant,
                "stage": int(stage),
                "offered_per_s": float(group["target_rate_per_s"].median()),
                "n": len(group),
                "achieved_per_s": float(success.sum()) / seconds,
                "p99_ms": p99,
                "error_share": error_share,
                "passes": bool(p99 < slo_p99_ms and error_share < error_threshold),
                "accepted_per_s": accepted / seconds,
                "processed_per_s": processed / seconds,
                "backlog_growth_per_s": (accepted - processed) / seconds,
                "keeps_up": bool(
                    (accepted - processed) / seconds
                    <= max(1.0, KEEP_UP_SHARE * float(group["target_rate_per_s"].median()))
                ),
            }
        )
    return (
        pd.DataFrame(result, columns=STAGE_COLUMNS)
        .sort_values(["variant", "offered_per_s"])
        .reset_index(drop=True)
    )


def _highest_before_first_failure(ordered: pd.DataFrame, ok: pd.Series) -> tuple[float, float]:
    """(highest offered rate below the first failing stage, first failing rate); NaN if none."""
    failing = ordered.loc[~ok]
    first_fail = float(failing["offered_per_s"].iloc[0]) if len(failing) else math.nan
    good = ordered if math.isnan(first_fail) else ordered.loc[ordered["offered_per_s"] < first_fail]
    return (float(good["offered_per_s"].max()) if len(good) else math.nan, first_fail)


def knee(stages: pd.DataFrame) -> pd.DataFrame:
    """Per variant: knee_rate_per_s (client view: SLO and errors; NaN if even the lowest stage
    fails), its stage, the first failing rate, sustained_rate_per_s (the knee where, in
    addition, processing kept up: for storage_first a 202 is not the end of the work) and
    drain_rate_per_s = the highest processed rate seen."""
    rows = []
    for variant, group in stages.groupby("variant"):
        ordered = group.sort_values("offered_per_s").reset_index(drop=True)
        passes = ordered["passes"].astype(bool)
        knee_rate, first_fail = _highest_before_first_failure(ordered, passes)
        keeps_up = ordered["keeps_up"].astype(bool) if "keeps_up" in ordered else passes
        sustained, _ = _highest_before_first_failure(ordered, passes & keeps_up)
        knee_stage = ordered.loc[ordered["offered_per_s"] == knee_rate, "stage"]
        rows.append(
            {
                "variant": variant,
                "knee_rate_per_s": knee_rate,
                "knee_stage": int(knee_stage.iloc[0]) if len(knee_stage) else -1,
                "first_failing_rate_per_s": first_fail,
                "sustained_rate_per_s": sustained,
                "drain_rate_per_s": float(ordered["processed_per_s"].max()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "variant", "knee_rate_per_s", "knee_stage", "first_failing_rate_per_s",
            "sustained_rate_per_s", "drain_rate_per_s",
        ],
    )  # fmt: skip


def _metrics_in_stage(
    metrics: pd.DataFrame, windows: pd.DataFrame | None, variant: str, rate: float
) -> pd.DataFrame:
    """The variant's metrics observed during the stage offered at ``rate`` (all if unknown)."""
    if windows is None or math.isnan(rate):
        return metrics
    chosen = windows.loc[(windows["variant"] == variant) & (windows["rate"] == rate)]
    if chosen.empty:
        return metrics
    inside = np.zeros(len(metrics), dtype=bool)
    stamps = metrics["timestamp_ms"].to_numpy(dtype=np.float64)
    for window in chosen.itertuples(index=False):
        inside |= (stamps >= window.start) & (stamps <= window.end)
    in_stage = metrics.loc[inside]
    return in_stage if (in_stage["variant"] == variant).any() else metrics


def concurrency_at_knee(
    knees: pd.DataFrame,
    metrics: pd.DataFrame,
    server: pd.DataFrame,
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per variant, Little's law at the sustained rate: concurrency = invocations/s x mean
    duration (s).
    Invocations/s = rate / mean batch size (1 for direct). Duration and batch size are taken
    from the metrics observed during that stage (``windows`` from :func:`stage_windows`), else
    over the run; without a Duration metric, from the items' started->processed time."""
    rows = []
    for knee_row in knees.itertuples(index=False):
        variant = knee_row.variant
        # At the sustained rate: above it the processor's concurrency is capped, not needed.
        rate = float(getattr(knee_row, "sustained_rate_per_s", knee_row.knee_rate_per_s))
        observed = _metrics_in_stage(metrics, windows, variant, rate)
        duration_ms = metric_mean(observed, variant, "Duration")
        source = "Duration metric"
        if math.isnan(duration_ms):
            items = server.loc[server["variant"] == variant]
            duration_ms = float((items["processed_at_ms"] - items["started_at_ms"]).mean())
            source = "items' started->processed"
        batch = metric_mean(observed, variant, "BatchSize") if variant == "storage_first" else 1.0
        batch = 1.0 if math.isnan(batch) or batch <= 0 else batch
        invocations = rate / batch
        rows.append(
            {
                "variant": variant,
                "rate_per_s": rate,
                "mean_batch_size": batch,
                "invocations_per_s": invocations,
                "mean_duration_ms": duration_ms,
                "concurrency": invocations * duration_ms / 1000,
                "duration_source": source,
            }
        )
    result = pd.DataFrame(rows)
    if not result.empty:
        result["concurrency_ceil"] = np.ceil(result["concurrency"].fillna(0)).astype(int)
    return result
