"""Stream processing lag and backlog (storage-first), on the server clock only.

Per request: accepted -> started (the trigger's delay), started -> processed (the work) and
accepted -> processed. The backlog at time t is the number of requests accepted by t that were
neither terminal (SUCCEEDED/FAILED) nor parked on the failure destination by t.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis import engine
from analysis.stats import describe_groups

__all__ = [
    "LAG_MEASURES",
    "backlog_over_time",
    "drain_summary",
    "lag_by_start",
    "lag_frame",
    "lag_over_time",
    "lag_summary",
    "time_to_result_summary",
    "trial_origins",
]

LAG_MEASURES = ("accepted_to_started_ms", "started_to_processed_ms", "accepted_to_processed_ms")
TERMINAL = ("SUCCEEDED", "FAILED")


def lag_frame(server: pd.DataFrame, variant: str = "storage_first") -> pd.DataFrame:
    """One row per terminal item of ``variant`` with the three lags (ms)."""
    items = server.loc[(server["variant"] == variant) & server["status"].isin(TERMINAL)]
    return pd.DataFrame(
        {
            "variant": items["variant"],
            "trial": items["trial"],
            "request_id": items["request_id"],
            "status": items["status"],
            "accepted_at_ms": items["accepted_at_ms"],
            "processed_at_ms": items["processed_at_ms"],
            "accepted_to_started_ms": items["started_at_ms"] - items["accepted_at_ms"],
            "started_to_processed_ms": items["processed_at_ms"] - items["started_at_ms"],
            "accepted_to_processed_ms": items["processed_at_ms"] - items["accepted_at_ms"],
            "cold_start": items["cold_start"].astype("object"),
        }
    ).reset_index(drop=True)


def lag_summary(
    lags: pd.DataFrame, *, connection: duckdb.DuckDBPyConnection | None = None
) -> pd.DataFrame:
    """Per variant and measure: n, trials, mean, quantiles, max with 95% CIs (covering the
    variation between trials too), computed by the engine (``connection``, else its own)."""
    if connection is None:
        with engine.connect() as opened:
            return lag_summary(lags, connection=opened)
    parts = []
    for measure in LAG_MEASURES:
        summary = engine.describe_groups(
            connection, lags[["variant", "trial", measure]], ["variant"], measure, "trial"
        )
        summary.insert(1, "measure", measure)
        parts.append(summary)
    return pd.concat(parts, ignore_index=True)


def lag_by_start(lags: pd.DataFrame) -> pd.DataFrame:
    """accepted -> processed per variant split by the processing environment's start
    ("cold", "warm", "unknown"): a storage-first cold start shows here, not in client latency."""
    start = np.where(
        lags["cold_start"].isna(),
        "unknown",
        np.where(lags["cold_start"].fillna(False).astype(bool), "cold", "warm"),
    )
    frame = lags.assign(start=start)
    return describe_groups(frame, ["variant", "start"], "accepted_to_processed_ms")


def trial_origins(server: pd.DataFrame, trials: pd.DataFrame) -> pd.Series:
    """Per trial: time zero (ms) for time axes: the trial's start, else its first acceptance."""
    first_accepted = server.groupby("trial")["accepted_at_ms"].min()
    if trials.empty:
        return first_accepted
    started = trials.set_index("trial")["started_at_ms"]
    return started.combine_first(first_accepted)


def lag_over_time(lags: pd.DataFrame, origins: pd.Series, bin_s: float = 1.0) -> pd.DataFrame:
    """Per variant and bin of acceptance time (s since trial origin): n, p50, p99 of
    accepted -> processed."""
    columns = ["variant", "t_s", "n", "p50_ms", "p99_ms"]
    if lags.empty:
        return pd.DataFrame(columns=columns)
    origin = lags["trial"].map(origins)
    frame = pd.DataFrame(
        {
            "variant": lags["variant"],
            "t_s": np.floor((lags["accepted_at_ms"] - origin) / 1000 / bin_s) * bin_s,
            "lag": lags["accepted_to_processed_ms"],
        }
    )
    grouped = frame.groupby(["variant", "t_s"], observed=True)["lag"]
    result = pd.concat(
        {"n": grouped.size(), "p50_ms": grouped.quantile(0.5), "p99_ms": grouped.quantile(0.99)},
        axis=1,
    ).reset_index()
    return result[columns]


def backlog_over_time(
    server: pd.DataFrame,
    parked: pd.DataFrame,
    origins: pd.Series,
    variant: str = "storage_first",
    step_s: float = 1.0,
) -> pd.DataFrame:
    """Per trial, on a grid of ``step_s`` from the trial origin to the last event: accepted,
    done (terminal or parked) and backlog = accepted - done, evaluated at each grid time."""
    columns = ["variant", "trial", "t_s", "at_ms", "accepted", "done", "backlog"]
    items = server.loc[server["variant"] == variant]
    parked_rows = parked.loc[parked["variant"] == variant]
    parts = []
    for trial, group in items.groupby("trial"):
        origin = float(origins.get(trial, group["accepted_at_ms"].min()))
        accepted = np.sort(group["accepted_at_ms"].to_numpy(dtype=np.float64))
        terminal = group["status"].isin(TERMINAL) & group["processed_at_ms"].notna()
        done_times = [group.loc[terminal, "processed_at_ms"].to_numpy(dtype=np.float64)]
        trial_parked = parked_rows.loc[parked_rows["trial"] == trial]
        # A parked request leaves the backlog when parked (unless it later became terminal).
        not_terminal_ids = set(group.loc[~terminal, "request_id"])
        resolvable = trial_parked["request_id"].isin(not_terminal_ids) | (
            trial_parked["request_id"].isna()
        )
        done_times.append(trial_parked.loc[resolvable, "timestamp_ms"].dropna().to_numpy())
        done = np.sort(np.concatenate(done_times))
        last = max(accepted[-1], done[-1] if len(done) else accepted[-1])
        grid = origin + np.arange(0.0, (last - origin) / 1000 + step_s, step_s) * 1000
        accepted_by = np.searchsorted(accepted, grid, side="right")
        done_by = np.searchsorted(done, grid, side="right")
        parts.append(
            pd.DataFrame(
                {
                    "variant": variant,
                    "trial": trial,
                    "t_s": (grid - origin) / 1000,
                    "at_ms": grid,
                    "accepted": accepted_by,
                    "done": done_by,
                    "backlog": accepted_by - done_by,
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def time_to_result_summary(client: pd.DataFrame) -> pd.DataFrame:
    """Polling clients: send -> terminal status seen, per variant (empty if nobody polled)."""
    rows = client.loc[client["time_to_result_ms"].notna()]
    return describe_groups(rows, ["variant"], "time_to_result_ms")


def drain_summary(backlog: pd.DataFrame, server: pd.DataFrame) -> pd.DataFrame:
    """Per storage_first trial: backlog peak, when it peaked (s since trial start) and how long
    after the last acceptance the last item became terminal (drain_after_load_s)."""
    columns = ["variant", "trial", "backlog_peak", "peak_at_s", "drain_after_load_s"]
    rows = []
    for (variant, trial), group in backlog.groupby(["variant", "trial"]):
        items = server.loc[(server["variant"] == variant) & (server["trial"] == trial)]
        last_accepted = items["accepted_at_ms"].max()
        last_done = items.loc[items["status"].isin(TERMINAL), "processed_at_ms"].max()
        peak_index = group["backlog"].idxmax()
        rows.append(
            {
                "variant": variant,
                "trial": trial,
                "backlog_peak": int(group["backlog"].max()),
                "peak_at_s": float(group.loc[peak_index, "t_s"]),
                "drain_after_load_s": max(0.0, float(last_done - last_accepted) / 1000),
            }
        )
    return pd.DataFrame(rows, columns=columns)
