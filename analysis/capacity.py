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

import functools
import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from analysis import engine, metrics
from analysis.lag import TERMINAL
from analysis.latency import SUCCESS_OUTCOMES
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


# Headline client rows (warm-up excluded, as latency.headline_rows) inside a load stage; first_:
# the request's first attempt (what the generator sent on schedule).
_STAGE_ROWS = """
    SELECT *, coalesce(attempt, 1) <= 1 AS first_ FROM client
    WHERE NOT coalesce(warmup, false) AND stage IS NOT NULL
"""


def stage_windows(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Each stage's time window per variant and trial: start, end (epoch ms; client wall clock
    ~ server wall clock) and rate (the median offered rate). The last request's own
    inter-arrival gap belongs to it."""
    spans = connection.execute(
        f"""
        SELECT variant, trial, stage,
               min(intended_at_ms) FILTER (WHERE NOT isnan(intended_at_ms)) AS start,
               max(intended_at_ms) FILTER (WHERE NOT isnan(intended_at_ms)) AS "end",
               min(target_rate_per_s) FILTER (WHERE NOT isnan(target_rate_per_s)) AS low_,
               max(target_rate_per_s) FILTER (WHERE NOT isnan(target_rate_per_s)) AS high_
        FROM ({_STAGE_ROWS}) WHERE variant IS NOT NULL AND trial IS NOT NULL
        GROUP BY ALL ORDER BY ALL
        """
    ).df()
    # The median rate: a stage's one rate (pandas' (a + a) / 2 is a), else pandas' median.
    rates = []
    for window in spans.itertuples(index=False):
        if pd.isna(window.low_) or window.low_ == window.high_:
            rates.append(float(window.low_))
            continue
        rows = f"SELECT * FROM ({_STAGE_ROWS}) WHERE trial = {int(window.trial)}"
        median = _group_values(connection, rows, window.variant, window.stage, "target_rate_per_s")
        rates.append(float(median.median()))
    windows = spans.drop(columns=["low_", "high_"]).assign(rate=rates)
    windows["end"] += 1000 / windows["rate"].where(windows["rate"] > 0)
    windows["end"] = windows["end"].fillna(windows["start"])
    return windows


def _group_values(
    connection: duckdb.DuckDBPyConnection, rows: str, variant: str, stage: int, column: str
) -> pd.Series:
    """One column of one (variant, stage) group of ``rows`` (SQL) as pandas holds it (NULL is
    NaN): its quantiles and median are then pandas' own, one group in memory at a time."""
    return pd.Series(
        engine.ordered_column(
            connection,
            f'SELECT "{column}" FROM ({rows}) WHERE variant = ? AND stage = ?',
            [variant, int(stage)],
        )
    )


def _in_windows(
    connection: duckdb.DuckDBPyConnection, windows: pd.DataFrame, rows: str, column: str
) -> pd.Series:
    """Per window (windows' order): rows of ``rows`` (SQL) of its variant and trial whose
    ``column`` lies in [start, end)."""
    connection.register("windows_in", windows[["variant", "trial", "start", "end"]].reset_index())
    try:
        counts = connection.execute(
            f"""
            SELECT w."index", count(r."{column}") AS n FROM windows_in w
            LEFT JOIN ({rows}) r ON r.variant = w.variant AND r.trial = w.trial
                 AND r."{column}" >= w.start AND r."{column}" < w."end"
            GROUP BY w."index"
            """
        ).df()
    finally:
        connection.unregister("windows_in")
    return counts.set_index("index")["n"].reindex(windows.index, fill_value=0).astype(int)


def stage_table(
    connection: duckdb.DuckDBPyConnection,
    *,
    slo_p99_ms: float,
    error_threshold: float,
    delivery: Delivery | None = None,
    windows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per variant and load stage: offered rate, sends by actual time and late share
    (delivery), status (STATUSES), achieved rate, p99 from actual and from intended send with
    the latter's upper 95% bound (NaN: unbounded), error share, whether the stage passes, and
    server-side accepted/processed rates in its window. Computed in the engine over the
    client and server views. ``windows``: :func:`stage_windows`' table, when the caller has it."""
    delivery = delivery or Delivery()
    stage_rows = f"SELECT * FROM ({_STAGE_ROWS}) WHERE variant IS NOT NULL"
    success = engine.sql_list(SUCCESS_OUTCOMES)
    groups = connection.execute(
        f"""
        SELECT variant, stage, count(*) AS n, count(DISTINCT trial) AS trials,
               count(*) FILTER (WHERE first_) AS first_sends,
               count(*) FILTER (WHERE first_ AND NOT isnan(sent_at_ms - intended_at_ms)
                                AND sent_at_ms - intended_at_ms > ?) AS late,
               count(*) FILTER (WHERE outcome IN {success}) AS successes
        FROM ({stage_rows}) GROUP BY ALL ORDER BY ALL
        """,
        [float(delivery.late_after_ms)],
    ).df()
    if groups.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    windows = stage_windows(connection) if windows is None else windows
    sent = _in_windows(
        connection, windows, f"SELECT * FROM ({_STAGE_ROWS}) WHERE first_", "sent_at_ms"
    )
    accepted = _in_windows(connection, windows, "SELECT * FROM server", "accepted_at_ms")
    processed = _in_windows(
        connection,
        windows,
        f"SELECT * FROM server WHERE status IN {engine.sql_list(TERMINAL)}",
        "processed_at_ms",
    )
    result = []
    for group in groups.itertuples(index=False):
        variant, stage = group.variant, group.stage
        in_stage = (windows["variant"] == variant) & (windows["stage"] == stage)
        this_stage = windows.loc[in_stage]
        seconds = max(float(((this_stage["end"] - this_stage["start"]) / 1000).sum()), 1e-9)
        stage_sent = int(sent[in_stage].sum())
        stage_accepted = int(accepted[in_stage].sum())
        stage_processed = int(processed[in_stage].sum())
        values = functools.partial(_group_values, connection, stage_rows, variant, stage)
        offered_rate = float(values("target_rate_per_s").median())
        late_share = group.late / group.first_sends if group.first_sends else 0.0
        sent_per_s = stage_sent / seconds
        from_intended = np.sort(values("latency_from_intended_ms").dropna().to_numpy())
        p99_intended, _, p99_hi = quantile_interval(from_intended, 0.99)
        error_share = (group.n - group.successes) / group.n
        hint = ""
        if (
            sent_per_s < offered_rate * (1 - delivery.rate_tolerance)
            or late_share >= delivery.late_share
        ):
            status = "generator-limited"
            hint = (
                f"the generator sent {sent_per_s:.0f}/s of {offered_rate:g}/s offered, "
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
        backlog_growth = (stage_accepted - stage_processed) / seconds
        result.append(
            {
                "variant": variant,
                "stage": int(stage),
                "offered_per_s": offered_rate,
                "n": int(group.n),
                "trials": int(group.trials),
                "sent_per_s": sent_per_s,
                "late_share": late_share,
                "status": status,
                "achieved_per_s": float(group.successes) / seconds,
                "p99_ms": float(values("latency_ms").quantile(0.99)),
                "p99_from_intended_ms": p99_intended,
                "p99_from_intended_hi_ms": p99_hi,
                "error_share": error_share,
                "passes": status == "pass",
                "accepted_per_s": stage_accepted / seconds,
                "processed_per_s": stage_processed / seconds,
                "backlog_growth_per_s": backlog_growth,
                "keeps_up": bool(backlog_growth <= max(1.0, KEEP_UP_SHARE * offered_rate)),
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


def _stage_of(
    windows: pd.DataFrame | None, variant: str, rate: float
) -> list[metrics.Window] | None:
    """The windows of ``variant``'s stages offered at ``rate`` (None: the whole run)."""
    if windows is None or math.isnan(rate) or windows.empty:
        return None
    chosen = windows.loc[(windows["variant"] == variant) & (windows["rate"] == rate)]
    return [(float(row.start), float(row.end)) for row in chosen.itertuples(index=False)] or None


def concurrency_at_knee(
    connection: duckdb.DuckDBPyConnection,
    knees: pd.DataFrame,
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
        during = _stage_of(windows, variant, rate)
        if during and not metrics.has_rows_during(connection, variant, during):
            during = None  # nothing of the variant observed in that stage: the whole run
        duration_ms = metrics.metric_mean(connection, variant, "Duration", during)
        source = "Duration metric"
        if math.isnan(duration_ms):
            # pandas' mean of the differences in read order (a float sum depends on its order)
            work = engine.ordered_column(
                connection,
                f"SELECT processed_at_ms - started_at_ms FROM {engine.in_read_order('server')} "
                "WHERE variant = ? ORDER BY read_order",
                [variant],
            )
            duration_ms = float(pd.Series(work).mean())
            source = "items' started->processed"
        batch = (
            metrics.metric_mean(connection, variant, "BatchSize", during)
            if variant == "storage_first"
            else 1.0
        )
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
