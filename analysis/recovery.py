"""Failure recovery: errors around an outage, recovery time, and the delay poison records
cause to healthy ones (the per-request accounting is in ``analysis.accounting``).

Definitions (stated in the report):
- recovery time: from the outage's end to the first second after which every one-second bin
  stays recovered: storage_first: backlog at or below the pre-outage peak (plus tolerance) and
  the median accepted->processed lag of requests arriving then within the tolerance of the
  pre-outage median (``lag_checked`` is false when the load ended before the backlog drained,
  so no later arrival could confirm the lag); direct: the bin's transient client error share
  at most the pre-outage share + 1 point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.lag import TERMINAL

__all__ = [
    "TRANSIENT_ERRORS",
    "RecoveryTolerance",
    "errors_around_outage",
    "outage_windows",
    "poison_delay",
    "recovery_times",
]

# Client outcomes an outage causes; "rejected" (400) is a permanent failure such as poison.
TRANSIENT_ERRORS = ("throttled", "server_error", "timeout", "connection_error")


@dataclass(frozen=True)
class RecoveryTolerance:
    """When a variant counts as recovered (see the module docstring)."""

    lag_factor: float = 2.0
    lag_slack_ms: float = 250.0
    backlog_slack: int = 5
    error_share_slack: float = 0.01

    def lag_threshold(self, baseline_ms: float) -> float:
        return max(baseline_ms * self.lag_factor, baseline_ms + self.lag_slack_ms)

    def describe(self) -> str:
        return (
            f"backlog within {self.backlog_slack} of its pre-outage peak and lag of new "
            f"arrivals within max({self.lag_factor:g} x, +{self.lag_slack_ms:g} ms) of the "
            "pre-outage median, for every later second (storage_first; lag_checked = no when "
            "the load ended before the backlog drained, so only the backlog decided); "
            f"transient error share within {self.error_share_slack:.0%} of the pre-outage "
            "share (direct)"
        )


def outage_windows(trials: pd.DataFrame) -> pd.DataFrame:
    """Per trial with an outage: variant, trial, outage_start_ms, outage_end_ms, ended_at_ms
    (when the load stopped)."""
    columns = ["variant", "trial", "outage_start_ms", "outage_end_ms", "ended_at_ms"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    return trials.loc[trials["outage_start_ms"].notna(), columns].reset_index(drop=True)


def errors_around_outage(client: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per variant: client-visible transient errors (TRANSIENT_ERRORS) before, during and after
    each trial's outage (by intended send time), summed over trials."""
    columns = ["variant", "phase", "requests", "transient_errors", "error_share"]
    if windows.empty:
        return pd.DataFrame(columns=columns)
    joined = client.merge(windows, on=["variant", "trial"], how="inner")
    phase = np.select(
        [
            joined["intended_at_ms"] < joined["outage_start_ms"],
            joined["intended_at_ms"] < joined["outage_end_ms"],
        ],
        ["before", "during"],
        default="after",
    )
    frame = pd.DataFrame(
        {
            "variant": joined["variant"],
            "phase": phase,
            "error": joined["outcome"].isin(TRANSIENT_ERRORS),
        }
    )
    result = (
        frame.groupby(["variant", "phase"])["error"]
        .agg(requests="size", transient_errors="sum")
        .reset_index()
    )
    result["error_share"] = result["transient_errors"] / result["requests"]
    order = result["phase"].map({"before": 0, "during": 1, "after": 2})
    return (
        result.assign(_order=order)
        .sort_values(["variant", "_order"])[columns]
        .reset_index(drop=True)
    )


def _first_stable(times: np.ndarray, ok: np.ndarray) -> float:
    """The first time from which ``ok`` holds for every later bin (NaN if it never does)."""
    if len(ok) == 0 or not ok[-1]:
        return math.nan
    bad = np.flatnonzero(~ok)
    return float(times[0] if len(bad) == 0 else times[bad[-1] + 1])


def recovery_times(
    client: pd.DataFrame,
    server: pd.DataFrame,
    backlog: pd.DataFrame,
    windows: pd.DataFrame,
    tolerance: RecoveryTolerance | None = None,
) -> pd.DataFrame:
    """Per trial with an outage: recovery_s (NaN if never recovered within the data),
    backlog_peak and the pre-outage baseline the tolerance was applied to (storage_first: the
    median lag; direct: the transient error share)."""
    tolerance = tolerance or RecoveryTolerance()
    columns = [
        "variant", "trial", "recovery_s", "recovered", "under_load", "lag_checked",
        "backlog_peak", "baseline_lag_ms", "baseline_error_share",
    ]  # fmt: skip
    rows = []
    for window in windows.itertuples(index=False):
        start, end = float(window.outage_start_ms), float(window.outage_end_ms)
        if window.variant == "storage_first":
            row = _storage_first_recovery(server, backlog, window.trial, start, end, tolerance)
        else:
            row = _direct_recovery(client, window.variant, window.trial, start, end, tolerance)
        recovered_at_ms = end + float(row["recovery_s"]) * 1000
        # Recovered while requests still arrived, or only once the load had stopped?
        row["under_load"] = (
            bool(recovered_at_ms <= float(window.ended_at_ms))
            if (row["recovered"] and not math.isnan(float(window.ended_at_ms)))
            else False
        )
        rows.append({"variant": window.variant, "trial": window.trial, **row})
    return pd.DataFrame(rows, columns=columns)


def _storage_first_recovery(
    server: pd.DataFrame,
    backlog: pd.DataFrame,
    trial: int,
    start: float,
    end: float,
    tolerance: RecoveryTolerance,
) -> dict[str, float | bool]:
    items = server.loc[
        (server["variant"] == "storage_first")
        & (server["trial"] == trial)
        & server["status"].isin(TERMINAL)
    ]
    lag = items["processed_at_ms"] - items["accepted_at_ms"]
    before = items["accepted_at_ms"] < start
    baseline = float(lag[before].median()) if before.any() else math.nan
    trial_backlog = backlog.loc[backlog["trial"] == trial]
    peak = float(trial_backlog["backlog"].max()) if len(trial_backlog) else math.nan
    if math.isnan(baseline):
        return {
            "recovery_s": math.nan,
            "recovered": False,
            "backlog_peak": peak,
            "baseline_lag_ms": baseline,
        }
    threshold = tolerance.lag_threshold(baseline)
    # Backlog sampled at whole seconds after the outage, against its pre-outage peak.
    before_backlog = trial_backlog.loc[trial_backlog["at_ms"] < start, "backlog"]
    limit = (float(before_backlog.max()) if len(before_backlog) else 0.0) + tolerance.backlog_slack
    later = trial_backlog.loc[trial_backlog["at_ms"] >= end]
    backlog_ok_from = _first_stable(
        np.ceil((later["at_ms"].to_numpy() - end) / 1000), later["backlog"].to_numpy() <= limit
    )
    # Lag of what arrives in each second after the outage tells whether the queue ahead of it
    # has drained (a shard is processed in order). When the load ended before the backlog
    # drained, nothing arrived afterwards to check and the drained backlog decides alone.
    after = items.loc[items["accepted_at_ms"] >= end]
    bins = np.floor((after["accepted_at_ms"] - end) / 1000)
    bin_lag = lag[after.index].groupby(bins).median()
    bin_times = bin_lag.index.to_numpy(dtype=np.float64)
    lag_checked = bool(len(bin_times)) and (
        math.isnan(backlog_ok_from) or bool((bin_times >= backlog_ok_from).any())
    )
    lag_ok_from = (
        _first_stable(bin_times, bin_lag.to_numpy() <= threshold)
        if lag_checked
        else backlog_ok_from
    )
    recovered_at = (
        math.nan
        if math.isnan(lag_ok_from) or math.isnan(backlog_ok_from)
        else max(lag_ok_from, backlog_ok_from)
    )
    return {
        "recovery_s": recovered_at,
        "recovered": not math.isnan(recovered_at),
        "lag_checked": lag_checked,
        "backlog_peak": peak,
        "baseline_lag_ms": baseline,
    }


def _direct_recovery(
    client: pd.DataFrame,
    variant: str,
    trial: int,
    start: float,
    end: float,
    tolerance: RecoveryTolerance,
) -> dict[str, float | bool]:
    mask = (client["variant"] == variant) & (client["trial"] == trial)
    rows = client.loc[mask, ["intended_at_ms", "outcome"]]
    error = rows["outcome"].isin(TRANSIENT_ERRORS)
    before = rows["intended_at_ms"] < start
    baseline = float(error[before].mean()) if before.any() else 0.0
    after = rows["intended_at_ms"] >= end
    bins = np.floor((rows.loc[after, "intended_at_ms"] - end) / 1000)
    share = error[after].groupby(bins).mean()
    ok = share.to_numpy() <= baseline + tolerance.error_share_slack
    recovered_at = _first_stable(share.index.to_numpy(dtype=np.float64), ok)
    return {
        "recovery_s": recovered_at,
        "recovered": not math.isnan(recovered_at),
        "backlog_peak": math.nan,
        "baseline_error_share": baseline,
    }


def poison_delay(server: pd.DataFrame, tolerance: RecoveryTolerance | None = None) -> pd.DataFrame:
    """Per variant: healthy (SUCCEEDED) items whose accepted->processed lag exceeds the
    tolerance around the healthy median, and by how much (excess over that median, ms)."""
    tolerance = tolerance or RecoveryTolerance()
    rows = []
    for variant, items in server.loc[server["status"] == "SUCCEEDED"].groupby("variant"):
        lag = (items["processed_at_ms"] - items["accepted_at_ms"]).dropna()
        if lag.empty:
            continue
        baseline = float(lag.median())
        delayed = lag[lag > tolerance.lag_threshold(baseline)] - baseline
        rows.append(
            {
                "variant": variant,
                "healthy": len(lag),
                "baseline_lag_ms": baseline,
                "delayed": len(delayed),
                "delayed_share": len(delayed) / len(lag),
                "excess_p50_ms": float(delayed.median()) if len(delayed) else 0.0,
                "excess_max_ms": float(delayed.max()) if len(delayed) else 0.0,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "variant", "healthy", "baseline_lag_ms", "delayed", "delayed_share",
            "excess_p50_ms", "excess_max_ms",
        ],
    )  # fmt: skip
