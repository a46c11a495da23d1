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

import duckdb
import numpy as np
import pandas as pd

from analysis import engine
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
_TRANSIENT_SQL = engine.sql_list(TRANSIENT_ERRORS)
_TERMINAL_SQL = engine.sql_list(TERMINAL)
_OUTAGE = ["outage_start_ms", "outage_end_ms"]


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


def errors_around_outage(
    connection: duckdb.DuckDBPyConnection, windows: pd.DataFrame
) -> pd.DataFrame:
    """Per variant: client-visible transient errors (TRANSIENT_ERRORS) before, during and after
    each trial's outage (by intended send time), summed over trials."""
    columns = ["variant", "phase", "requests", "transient_errors", "error_share"]
    if windows.empty:
        return pd.DataFrame(columns=columns)
    connection.register("outages_in", windows[["variant", "trial", *_OUTAGE]])
    try:
        result = connection.execute(
            f"""
            SELECT c.variant,
                   CASE WHEN NOT isnan(w.outage_start_ms)
                             AND c.intended_at_ms < w.outage_start_ms THEN 'before'
                        WHEN NOT isnan(w.outage_end_ms)
                             AND c.intended_at_ms < w.outage_end_ms THEN 'during'
                        ELSE 'after' END AS phase,
                   count(*) AS requests,
                   count(*) FILTER (WHERE c.outcome IN {_TRANSIENT_SQL}) AS transient_errors
            FROM client c JOIN outages_in w ON c.variant = w.variant AND c.trial = w.trial
            GROUP BY ALL
            """
        ).df()
    finally:
        connection.unregister("outages_in")
    result["requests"] = result["requests"].astype("int64")
    result["transient_errors"] = result["transient_errors"].astype("int64")
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
    connection: duckdb.DuckDBPyConnection,
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
            row = _storage_first_recovery(connection, backlog, window.trial, start, end, tolerance)
        else:
            row = _direct_recovery(connection, window.variant, window.trial, start, end, tolerance)
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
    connection: duckdb.DuckDBPyConnection,
    backlog: pd.DataFrame,
    trial: int,
    start: float,
    end: float,
    tolerance: RecoveryTolerance,
) -> dict[str, float | bool]:
    items = (
        "SELECT accepted_at_ms, processed_at_ms - accepted_at_ms AS lag FROM server "
        f"WHERE variant = 'storage_first' AND trial = ? AND status IN {_TERMINAL_SQL} "
        "AND NOT isnan(accepted_at_ms)"
    )
    before = connection.execute(f"{items} AND accepted_at_ms < ?", [int(trial), start]).df()
    baseline = float(before["lag"].median()) if len(before) else math.nan
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
    after = connection.execute(f"{items} AND accepted_at_ms >= ?", [int(trial), end]).df()
    bins = np.floor((after["accepted_at_ms"] - end) / 1000)
    bin_lag = after["lag"].groupby(bins).median()
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
    connection: duckdb.DuckDBPyConnection,
    variant: str,
    trial: int,
    start: float,
    end: float,
    tolerance: RecoveryTolerance,
) -> dict[str, float | bool]:
    rows = connection.execute(
        f"""
        SELECT count(*) FILTER (WHERE intended_at_ms < $start) AS before_,
               count(*) FILTER (WHERE intended_at_ms < $start AND outcome IN {_TRANSIENT_SQL})
               AS errors_before
        FROM client WHERE variant = $variant AND trial = $trial AND NOT isnan(intended_at_ms)
        """,
        {"start": start, "variant": variant, "trial": int(trial)},
    ).fetchall()
    before, errors_before = rows[0]
    # The share of a bool column's mean: count / n, as pandas divides them.
    baseline = float(errors_before / before) if before else 0.0
    bins = connection.execute(
        f"""
        SELECT floor((intended_at_ms - $end) / 1000) AS bin,
               count(*) FILTER (WHERE outcome IN {_TRANSIENT_SQL}) AS errors, count(*) AS n
        FROM client WHERE variant = $variant AND trial = $trial AND NOT isnan(intended_at_ms)
             AND intended_at_ms >= $end
        GROUP BY bin ORDER BY bin
        """,
        {"end": end, "variant": variant, "trial": int(trial)},
    ).df()
    share = pd.Series(
        (bins["errors"] / bins["n"]).to_numpy(dtype=np.float64),
        index=bins["bin"].to_numpy(dtype=np.float64),
    )
    ok = share.to_numpy() <= baseline + tolerance.error_share_slack
    recovered_at = _first_stable(share.index.to_numpy(dtype=np.float64), ok)
    return {
        "recovery_s": recovered_at,
        "recovered": not math.isnan(recovered_at),
        "backlog_peak": math.nan,
        "baseline_error_share": baseline,
    }


def poison_delay(
    connection: duckdb.DuckDBPyConnection, tolerance: RecoveryTolerance | None = None
) -> pd.DataFrame:
    """Per variant: healthy (SUCCEEDED) items whose accepted->processed lag exceeds the
    tolerance around the healthy median, and by how much (excess over that median, ms)."""
    tolerance = tolerance or RecoveryTolerance()
    rows = []
    variants = connection.execute(
        "SELECT DISTINCT variant FROM server WHERE status = 'SUCCEEDED' AND variant IS NOT NULL "
        "ORDER BY variant"
    ).fetchall()
    for (variant,) in variants:
        lag = pd.Series(
            engine.ordered_column(
                connection,
                "SELECT processed_at_ms - accepted_at_ms FROM server "
                "WHERE status = 'SUCCEEDED' AND variant = ?",
                [variant],
            )
        ).dropna()
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
