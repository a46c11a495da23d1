"""Capacity from a staircase of offered rates: per stage latency/errors, the knee, Lambda
concurrency at the knee (Little's law) and storage-first's drain rate and backlog growth.

A stage is judged only if the load generator delivered it: sends by actual time within
``Delivery.rate_tolerance`` (5%) of the offered rate and a late-send share under
``Delivery.late_share`` (1%). Otherwise it is *generator-limited*: shown, never a pass, never
the knee. A delivered stage passes when the upper 95% bound of its p99 latency **from intended
send time** is under the SLO and its error share under the threshold; a stage with too few
requests for a bounded p99 (``stats.n_for_bounded``) is *too few requests*, not a pass.

The knee ("capacity") is the highest offered rate R such that every judged stage offered at or
below R passes: a stage that passes above a failing one does not count, because a plan cannot
rely on it. Stages that could not be judged neither pass nor break the staircase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.lag import TERMINAL
from analysis.latency import SUCCESS_OUTCOMES, headline_rows
from analysis.metrics import metric_mean
from analysis.stats import quantile_interval

__all__ = ["Delivery", "concurrency_at_knee", "knee", "stage_table", "stage_windows"]

STAGE_COLUMNS = [
    "variant", "stage", "offered_per_s", "n", "trials", "sent_per_s", "late_share", "status",
    "achieved_per_s", "p99_ms", "p99_from_intended_ms", "p99_from_intended_hi_ms", "error_share",
    "passes", "accepted_per_s", "processed_per_s", "backlog_growth_per_s", "keeps_up", "hint",
]  # fmt: skip
STATUSES = ("pass", "fail", "generator-limited", "too few requests")


@dataclass(frozen=True)
class Delivery:
    """When a stage counts as delivered by the load generator."""

    rate_tolerance: float = 0.05
    """sends by actual time may fall short of the offered rate by at most this share"""
    late_share: float = 0.01
    """at most this share of sends may leave later than ``late_after_ms``"""
    late_after_ms: float = 100.0
    """a send counts late this long after its intended time. Not the pacer's own 10 ms
    bookkeeping tolerance: on a busy 2-core machine scheduler jitter alone makes 2-12% of sends
    10-80 ms late at 75-300/s (local capacity run 20261206-041349), although the generator
    keeps up; a generator that cannot keep up falls seconds behind"""

    def describe(self) -> str:
        return (
            f"sends by actual time within {self.rate_tolerance:.0%} of the offered rate and "
            f"under {self.late_share:.0%} of them more than {self.late_after_ms:g} ms late"
        )


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
    client: pd.DataFrame,
    server: pd.DataFrame,
    *,
    slo_p99_ms: float,
    error_threshold: float,
    delivery: Delivery | None = None,
) -> pd.DataFrame:
    """One row per variant and load stage: offered rate, sends by actual time and late share
    (delivery), status (STATUSES), achieved rate, p99 from actual and from intended send with
    the latter's upper 95% bound (NaN: unbounded), error share, whether the stage passes, and
    server-side accepted/processed rates in its window."""
    delivery = delivery or Delivery()
    columns = [
        "variant", "trial", "stage", "intended_at_ms", "sent_at_ms", "outcome", "latency_ms",
        "latency_from_intended_ms", "target_rate_per_s", "attempt",
    ]  # fmt: skip
    rows = headline_rows(client, [c for c in columns if c in client.columns])
    rows = rows.loc[rows["stage"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    first = rows["attempt"].fillna(1) <= 1 if "attempt" in rows else pd.Series(True, rows.index)
    windows = stage_windows(rows)
    # Sorted send times per (variant, trial): sends by actual time inside a stage's window.
    sends = {
        (str(variant), int(trial)): np.sort(group["sent_at_ms"].to_numpy(dtype=np.float64))
        for (variant, trial), group in rows.loc[first].groupby(["variant", "trial"], observed=True)
    }
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
        accepted = processed = sent = 0
        for window in this_stage.itertuples(index=False):
            key = (str(variant), int(window.trial))
            accepted_at, processed_at = times.get(key, (empty, empty))
            bounds = [window.start, window.end]
            sent += int(np.diff(np.searchsorted(sends.get(key, empty), bounds, side="left"))[0])
            accepted += int(np.diff(np.searchsorted(accepted_at, bounds, side="left"))[0])
            processed += int(np.diff(np.searchsorted(processed_at, bounds, side="left"))[0])
        offered = float(group["target_rate_per_s"].median())
        first_sends = group.loc[first.loc[group.index]]
        late = (first_sends["sent_at_ms"] - first_sends["intended_at_ms"]) > delivery.late_after_ms
        late_share = float(late.mean()) if len(late) else 0.0
        sent_per_s = sent / seconds
        success = group["outcome"].isin(SUCCESS_OUTCOMES)
        p99 = float(group["latency_ms"].quantile(0.99))
        from_intended = np.sort(group["latency_from_intended_ms"].dropna().to_numpy(np.float64))
        p99_intended, _, p99_hi = quantile_interval(from_intended, 0.99)
        error_share = float((~success).mean())
        hint = ""
        if (
            sent_per_s < offered * (1 - delivery.rate_tolerance)
            or late_share >= delivery.late_share
        ):
            status = "generator-limited"
            hint = (
                f"the generator sent {sent_per_s:.0f}/s of {offered:g}/s offered, "
                f"{late_share:.0%} more than {delivery.late_after_ms:g} ms late: run with more "
                "--processes or workers"
            )
        elif math.isnan(p99_hi):
            status = "too few requests"
            hint = f"{len(from_intended)} requests cannot bound p99: longer stages or more trials"
        elif p99_hi < slo_p99_ms and error_share < error_threshold:
            status = "pass"
        else:
            status = "fail"
        backlog_growth = (accepted - processed) / seconds
        result.append(
            {
                "variant": variant,
                "stage": int(stage),
                "offered_per_s": offered,
                "n": len(group),
                "trials": int(group["trial"].nunique()),
                "sent_per_s": sent_per_s,
                "late_share": late_share,
                "status": status,
                "achieved_per_s": float(success.sum()) / seconds,
                "p99_ms": p99,
                "p99_from_intended_ms": p99_intended,
                "p99_from_intended_hi_ms": p99_hi,
                "error_share": error_share,
                "passes": status == "pass",
                "accepted_per_s": accepted / seconds,
                "processed_per_s": processed / seconds,
                "backlog_growth_per_s": backlog_growth,
                "keeps_up": bool(backlog_growth <= max(1.0, KEEP_UP_SHARE * offered)),
                "hint": hint,
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


KNEE_COLUMNS = [
    "variant", "knee_rate_per_s", "knee_stage", "knee_n", "first_failing_rate_per_s",
    "sustained_rate_per_s", "sustained_stage", "sustained_n", "drain_rate_per_s",
    "drain_stage", "drain_n", "repetitions", "unjudged",
]  # fmt: skip


def _at(ordered: pd.DataFrame, rate: float, column: str) -> int:
    if column not in ordered:
        return -1
    chosen = ordered.loc[ordered["offered_per_s"] == rate, column]
    return int(chosen.iloc[0]) if len(chosen) else -1


def knee(stages: pd.DataFrame) -> pd.DataFrame:
    """Per variant: knee_rate_per_s (client view: SLO on p99 from intended send and errors;
    NaN if no judged stage passes below the first failing one), its stage and n, the first
    failing rate, sustained_rate_per_s (the knee where, in addition, processing kept up: for
    storage_first a 202 is not the end of the work) with its stage and n, drain_rate_per_s =
    the highest processed rate seen (stage, n), repetitions (trials per stage) and unjudged
    (stages that could not be judged, "80/s generator-limited")."""
    rows = []
    for variant, group in stages.groupby("variant"):
        ordered = group.sort_values("offered_per_s").reset_index(drop=True)
        status = (
            ordered["status"]
            if "status" in ordered
            else ordered["passes"].map({True: "pass", False: "fail"})
        )
        judged = ordered.loc[status.isin(("pass", "fail"))]
        passes = judged["passes"].astype(bool)
        knee_rate, first_fail = _highest_before_first_failure(judged, passes)
        keeps_up = judged["keeps_up"].astype(bool) if "keeps_up" in judged else passes
        sustained, _ = _highest_before_first_failure(judged, passes & keeps_up)
        drain_index = ordered["processed_per_s"].idxmax() if len(ordered) else None
        unjudged = ordered.loc[~status.isin(("pass", "fail"))]
        rows.append(
            {
                "variant": variant,
                "knee_rate_per_s": knee_rate,
                "knee_stage": _at(ordered, knee_rate, "stage"),
                "knee_n": _at(ordered, knee_rate, "n"),
                "first_failing_rate_per_s": first_fail,
                "sustained_rate_per_s": sustained,
                "sustained_stage": _at(ordered, sustained, "stage"),
                "sustained_n": _at(ordered, sustained, "n"),
                "drain_rate_per_s": float(ordered["processed_per_s"].max()),
                "drain_stage": int(ordered.loc[drain_index, "stage"])
                if drain_index is not None
                else -1,
                "drain_n": int(ordered.loc[drain_index, "n"])
                if drain_index is not None and "n" in ordered
                else -1,
                "repetitions": int(ordered["trials"].max()) if "trials" in ordered else 1,
                "unjudged": ", ".join(
                    f"{rate:g}/s {state}"
                    for rate, state in zip(
                        unjudged["offered_per_s"], status[unjudged.index], strict=True
                    )
                ),
            }
        )
    return pd.DataFrame(rows, columns=KNEE_COLUMNS)


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
