"""Stream processing lag and backlog (storage-first), on the server clock only.

Per request: accepted -> started (the trigger's delay), started -> processed (the work) and
accepted -> processed. The backlog at time t is the number of requests accepted by t that were
neither terminal (SUCCEEDED/FAILED) nor parked on the failure destination by t.

The passes read the engine's ``server``, ``parked`` and ``client`` views
(``engine.register_run_folder``); per-item arrays come into memory one trial or one group at
a time, never the table.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis import engine

__all__ = [
    "LAG_MEASURES",
    "backlog_over_time",
    "drain_summary",
    "lag_by_start",
    "lag_counts",
    "lag_frame",
    "lag_over_time",
    "lag_summary",
    "time_to_result_summary",
    "trial_origins",
]

LAG_MEASURES = ("accepted_to_started_ms", "started_to_processed_ms", "accepted_to_processed_ms")
TERMINAL = ("SUCCEEDED", "FAILED")
_TERMINAL_SQL = engine.sql_list(TERMINAL)


def _lags(variant: str, *, ordered: bool = False) -> str:
    """SQL: one row per terminal item of ``variant`` with the three lags (ms); ``ordered`` adds
    ``read_order`` (engine.in_read_order) for passes whose float sums depend on the order."""
    name = variant.replace("'", "''")
    source = engine.in_read_order("server") if ordered else "server"
    return f"""
        SELECT variant, trial, request_id, status, accepted_at_ms, processed_at_ms,
               started_at_ms - accepted_at_ms AS accepted_to_started_ms,
               processed_at_ms - started_at_ms AS started_to_processed_ms,
               processed_at_ms - accepted_at_ms AS accepted_to_processed_ms,
               cold_start{", read_order" if ordered else ""}
        FROM {source}
        WHERE variant = '{name}' AND status IN {_TERMINAL_SQL}
    """


def lag_frame(
    connection: duckdb.DuckDBPyConnection, variant: str = "storage_first"
) -> pd.DataFrame:
    """One row per terminal item of ``variant`` with the three lags (ms), in memory: for small
    runs and trial subsets (``asyncbench tune``); the report's passes stay in the engine."""
    frame = connection.execute(
        f"SELECT * EXCLUDE (read_order) FROM ({_lags(variant, ordered=True)}) ORDER BY read_order"
    ).df()
    frame["cold_start"] = frame["cold_start"].astype("object")
    return frame


def lag_counts(
    connection: duckdb.DuckDBPyConnection, variant: str = "storage_first"
) -> pd.DataFrame:
    """Terminal items of ``variant`` per trial (variant, trial, n): empty when nothing was
    processed, so there is no lag to show."""
    return connection.execute(
        f"SELECT variant, trial, count(*) AS n FROM ({_lags(variant)}) GROUP BY ALL ORDER BY ALL"
    ).df()


def lag_summary(
    connection: duckdb.DuckDBPyConnection, variant: str = "storage_first"
) -> pd.DataFrame:
    """Per variant and measure: n, trials, mean, quantiles, max with 95% CIs (covering the
    variation between trials too), computed by the engine."""
    # The lags once, in the engine (a few columns per processed item), for the three measures.
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE lags_ AS SELECT variant, trial, {', '.join(LAG_MEASURES)} "
        f"FROM ({_lags(variant, ordered=True)}) ORDER BY read_order"
    )
    try:
        parts = []
        for measure in LAG_MEASURES:
            rows = connection.sql(f"SELECT variant, trial, {measure} FROM lags_")
            summary = engine.describe_groups(connection, rows, ["variant"], measure, "trial")
            summary.insert(1, "measure", measure)
            parts.append(summary)
    finally:
        connection.execute("DROP TABLE IF EXISTS lags_")
    return pd.concat(parts, ignore_index=True)


def lag_by_start(
    connection: duckdb.DuckDBPyConnection, variant: str = "storage_first"
) -> pd.DataFrame:
    """accepted -> processed per variant split by the processing environment's start
    ("cold", "warm", "unknown"): a storage-first cold start shows here, not in client latency."""
    rows = f"""
        SELECT variant, CASE WHEN cold_start IS NULL THEN 'unknown'
                             WHEN cold_start THEN 'cold' ELSE 'warm' END AS start,
               accepted_to_processed_ms
        FROM ({_lags(variant)})
    """
    return engine.describe_fetched(
        connection, rows, ["variant", "start"], "accepted_to_processed_ms"
    )


def trial_origins(connection: duckdb.DuckDBPyConnection, trials: pd.DataFrame) -> pd.Series:
    """Per trial: time zero (ms) for time axes: the trial's start, else its first acceptance."""
    first = connection.execute(
        "SELECT trial, min(accepted_at_ms) FILTER (WHERE NOT isnan(accepted_at_ms)) "
        "AS accepted_at_ms FROM server WHERE trial IS NOT NULL GROUP BY trial ORDER BY trial"
    ).df()
    first_accepted = first.set_index("trial")["accepted_at_ms"]
    if trials.empty:
        return first_accepted
    started = trials.set_index("trial")["started_at_ms"]
    return started.combine_first(first_accepted)


def lag_over_time(
    connection: duckdb.DuckDBPyConnection,
    origins: pd.Series,
    variant: str = "storage_first",
    bin_s: float = 1.0,
) -> pd.DataFrame:
    """Per variant and bin of acceptance time (s since trial origin): n, p50, p99 of
    accepted -> processed."""
    columns = ["variant", "t_s", "n", "p50_ms", "p99_ms"]
    known = origins.dropna()
    step = f"CAST('{float(bin_s)!r}' AS DOUBLE)"
    connection.register(
        "origins_in",
        pd.DataFrame(
            {"trial": known.index.to_numpy(dtype=np.int64), "origin": known.to_numpy(np.float64)}
        ),
    )
    try:
        # The bin as pandas computed it: floor((accepted - origin) / 1000 / bin_s) * bin_s.
        rows = connection.sql(
            f"""
            SELECT * FROM (
                SELECT variant, floor((accepted_at_ms - origin) / 1000::DOUBLE / {step})
                       * {step} AS t_s, accepted_to_processed_ms AS lag
                FROM ({_lags(variant)}) JOIN origins_in USING (trial)
            ) WHERE NOT isnan(t_s)
            """,
        )
        result = engine.group_quantiles(
            connection, rows, ["variant", "t_s"], "lag", [0.5, 0.99], count_rows=True
        )
    finally:
        connection.unregister("origins_in")
    if result.empty:
        return pd.DataFrame(columns=columns)
    result = result.rename(columns={0.5: "p50_ms", 0.99: "p99_ms"})
    result["n"] = result["n"].astype("int64")
    return result[columns]


def _times(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: list[object]
) -> np.ndarray:
    return engine.ordered_column(connection, query, parameters)


def backlog_over_time(
    connection: duckdb.DuckDBPyConnection,
    origins: pd.Series,
    variant: str = "storage_first",
    step_s: float = 1.0,
) -> pd.DataFrame:
    """Per trial, on a grid of ``step_s`` from the trial origin to the last event: accepted,
    done (terminal or parked) and backlog = accepted - done, evaluated at each grid time."""
    columns = ["variant", "trial", "t_s", "at_ms", "accepted", "done", "backlog"]
    trials = connection.execute(
        "SELECT trial, min(accepted_at_ms) FILTER (WHERE NOT isnan(accepted_at_ms)) AS first_ "
        "FROM server WHERE variant = ? AND trial IS NOT NULL GROUP BY trial ORDER BY trial",
        [variant],
    ).fetchall()
    terminal = (
        f"status IN {_TERMINAL_SQL} AND processed_at_ms IS NOT NULL AND NOT isnan(processed_at_ms)"
    )
    in_trial = "FROM server WHERE variant = ? AND trial = ?"
    parts = []
    for trial, first_accepted in trials:
        key = [variant, trial]
        origin = float(origins.get(trial, first_accepted))
        accepted = np.sort(_times(connection, f"SELECT accepted_at_ms {in_trial}", key))
        done_times = [
            _times(
                connection,
                f"SELECT processed_at_ms {in_trial} AND {terminal}",
                key,
            )
        ]
        # A parked request leaves the backlog when parked (unless it later became terminal).
        done_times.append(
            _times(
                connection,
                f"""
                SELECT timestamp_ms FROM parked
                WHERE variant = ? AND trial = ? AND timestamp_ms IS NOT NULL
                  AND NOT isnan(timestamp_ms)
                  AND (request_id IS NULL OR request_id IN (
                      SELECT request_id FROM server
                      WHERE variant = ? AND trial = ? AND NOT coalesce({terminal}, false)))
                """,
                [*key, *key],
            )
        )
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


def time_to_result_summary(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Polling clients: send -> terminal status seen, per variant (empty if nobody polled)."""
    rows = "SELECT variant, time_to_result_ms FROM client WHERE NOT isnan(time_to_result_ms)"
    return engine.describe_fetched(connection, rows, ["variant"], "time_to_result_ms")


def drain_summary(connection: duckdb.DuckDBPyConnection, backlog: pd.DataFrame) -> pd.DataFrame:
    """Per storage_first trial: backlog peak, when it peaked (s since trial start) and how long
    after the last acceptance the last item became terminal (drain_after_load_s)."""
    columns = ["variant", "trial", "backlog_peak", "peak_at_s", "drain_after_load_s"]
    ends = {
        (str(variant), int(trial)): (last_accepted, last_done)
        for variant, trial, last_accepted, last_done in connection.execute(
            f"""
            SELECT variant, trial,
                   max(accepted_at_ms) FILTER (WHERE NOT isnan(accepted_at_ms)),
                   max(processed_at_ms) FILTER (WHERE NOT isnan(processed_at_ms)
                                                AND status IN {_TERMINAL_SQL})
            FROM server WHERE variant IS NOT NULL AND trial IS NOT NULL GROUP BY ALL
            """
        ).fetchall()
    }
    rows = []
    for (variant, trial), group in backlog.groupby(["variant", "trial"]):
        last_accepted, last_done = ends.get((str(variant), int(trial)), (None, None))
        last_accepted = np.nan if last_accepted is None else last_accepted
        last_done = np.nan if last_done is None else last_done
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
