"""Client-side response latency: summaries with CIs, throughput over time, outcomes, cold starts.

Latency counts every request the client got an answer (or a timeout) for, errors included:
that is what a client waits. Warm-up rows are excluded from headline numbers and summarised
apart. Time axes are seconds since the trial's first intended send, pooled across trials.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis import engine
from analysis.stats import describe_groups

__all__ = [
    "SUCCESS_OUTCOMES",
    "answered_rows",
    "cold_warm_summary",
    "headline_rows",
    "latency_over_time",
    "latency_summary",
    "outcome_rates",
    "per_trial_quantiles",
    "send_delay_summary",
    "throughput_over_time",
    "warmup_rows",
]

SUCCESS_OUTCOMES = ("accepted", "succeeded")
LATENCY_COLUMNS = ("latency_ms", "latency_from_intended_ms")


def _is_warmup(client: pd.DataFrame) -> pd.Series:
    return client["warmup"].fillna(False).astype(bool)


def headline_rows(client: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows that count for headline numbers: everything but warm-up. Naming ``columns`` copies
    only those (a million-row frame has many columns the caller does not need)."""
    mask = ~_is_warmup(client)
    return client.loc[mask] if columns is None else client.loc[mask, columns]


def answered_rows(
    client: pd.DataFrame, columns: list[str] | None = None, *, warmup: bool = False
) -> pd.DataFrame:
    """Headline (or warm-up) rows the API answered with success (200 direct, 202 storage-first).

    Response latency is the latency of served requests: a 502 returned in 3 ms during an outage
    is not a fast answer, and mixing it in would make the failing variant look faster. Errors
    are counted in the outcome and recovery tables instead.
    """
    mask = _is_warmup(client) if warmup else ~_is_warmup(client)
    mask &= client["outcome"].isin(SUCCESS_OUTCOMES)
    return client.loc[mask] if columns is None else client.loc[mask, columns]


def warmup_rows(client: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows sent during warm-up (reported separately)."""
    mask = _is_warmup(client)
    return client.loc[mask] if columns is None else client.loc[mask, columns]


def latency_summary(
    client: pd.DataFrame,
    *,
    warmup: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Per variant and measure ("latency_ms" from actual send, "latency_from_intended_ms" from
    intended send) of successful answers: n, mean, p50..p99.9, max with 95% CIs.
    ``warmup=True`` summarises warm-up. The order statistics come from the engine
    (``connection``, else a connection of its own; see analysis.engine)."""
    if connection is None:
        with engine.connect() as opened:
            return latency_summary(client, warmup=warmup, connection=opened)
    rows = answered_rows(client, ["variant", "trial", *LATENCY_COLUMNS], warmup=warmup)
    parts = []
    for column in LATENCY_COLUMNS:
        # Intervals cover the variation between trials too (analysis.stats.describe).
        summary = engine.describe_groups(
            connection, rows, ["variant"], column, trial_column="trial"
        )
        summary.insert(1, "measure", column)
        parts.append(summary)
    return pd.concat(parts, ignore_index=True)


def per_trial_quantiles(
    client: pd.DataFrame, column: str = "latency_ms", quantiles: tuple[float, ...] = (0.5, 0.99)
) -> pd.DataFrame:
    """One row per (variant, trial): the given quantiles of ``column`` over successful answers
    (for tests across trials)."""
    rows = answered_rows(client, ["variant", "trial", column])
    grouped = rows.groupby(["variant", "trial"], observed=True)[column]
    result = pd.concat(
        {f"q{round(q * 1000):04d}": grouped.quantile(q) for q in quantiles}, axis=1
    ).reset_index()
    return result


def outcome_rates(client: pd.DataFrame) -> pd.DataFrame:
    """Per variant and outcome: count and share of headline requests."""
    rows = headline_rows(client, ["variant", "outcome"])
    counts = rows.groupby(["variant", "outcome"], observed=True).size().rename("count")
    result = counts.reset_index()
    totals = result.groupby("variant")["count"].transform("sum")
    result["share"] = result["count"] / totals
    return result


def _trial_origin(client: pd.DataFrame) -> pd.Series:
    return client.groupby(["variant", "trial"], observed=True)["intended_at_ms"].transform("min")


def throughput_over_time(client: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Per variant and time bin (s since trial start): offered rate (by intended send time) and
    achieved rate (successful answers by completion time), per second, averaged over trials."""
    if client.empty:
        return pd.DataFrame(columns=["variant", "t_s", "offered_per_s", "achieved_per_s"])
    origin = _trial_origin(client)
    intended_bin = np.floor((client["intended_at_ms"] - origin) / 1000 / bin_s) * bin_s
    done_at = client["sent_at_ms"] + client["latency_ms"]
    done_bin = np.floor((done_at - origin) / 1000 / bin_s) * bin_s
    success = client["outcome"].isin(SUCCESS_OUTCOMES)
    trials = client.groupby("variant", observed=True)["trial"].nunique()
    offered = (
        pd.DataFrame({"variant": client["variant"], "t_s": intended_bin})
        .groupby(["variant", "t_s"], observed=True)
        .size()
        .rename("offered")
    )
    achieved = (
        pd.DataFrame({"variant": client["variant"][success], "t_s": done_bin[success]})
        .groupby(["variant", "t_s"], observed=True)
        .size()
        .rename("achieved")
    )
    result = pd.concat([offered, achieved], axis=1).fillna(0).reset_index()
    per_trial_bin = result["variant"].map(trials).astype(float) * bin_s
    result["offered_per_s"] = result.pop("offered") / per_trial_bin
    result["achieved_per_s"] = result.pop("achieved") / per_trial_bin
    return result.sort_values(["variant", "t_s"], ignore_index=True)


def latency_over_time(client: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Per variant and time bin (s since trial start, by intended send): n, p50 and p99 of
    latency from actual and from intended send; warm-up bins are left out."""
    columns = ["variant", "t_s", "n", "p50_ms", "p99_ms", "p99_from_intended_ms"]
    if client.empty:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "variant": client["variant"],
            "t_s": np.floor((client["intended_at_ms"] - _trial_origin(client)) / 1000 / bin_s)
            * bin_s,
            "latency_ms": client["latency_ms"],
            "latency_from_intended_ms": client["latency_from_intended_ms"],
        }
    ).loc[~_is_warmup(client)]  # the time axis starts at the trial's start, warm-up included
    grouped = frame.groupby(["variant", "t_s"], observed=True)
    result = pd.concat(
        {
            "n": grouped.size(),
            "p50_ms": grouped["latency_ms"].quantile(0.5),
            "p99_ms": grouped["latency_ms"].quantile(0.99),
            "p99_from_intended_ms": grouped["latency_from_intended_ms"].quantile(0.99),
        },
        axis=1,
    ).reset_index()
    return result[columns]


def cold_warm_summary(client: pd.DataFrame, server: pd.DataFrame) -> pd.DataFrame:
    """Latency summary per variant split by the server item's ``cold_start`` (joined on
    request_id); rows without a stored item are "unknown"."""
    rows = headline_rows(client, ["variant", "request_id", "latency_ms"])
    cold = (
        server.loc[server["request_id"].notna(), ["variant", "request_id", "cold_start"]]
        .drop_duplicates(["variant", "request_id"])
        .astype({"cold_start": "object"})
    )
    joined = rows.merge(cold, on=["variant", "request_id"], how="left")
    joined["start"] = np.where(
        joined["cold_start"].isna(),
        "unknown",
        np.where(joined["cold_start"].fillna(False).astype(bool), "cold", "warm"),
    )
    return describe_groups(joined, ["variant", "start"], "latency_ms")


def send_delay_summary(client: pd.DataFrame, late_after_ms: float = 10.0) -> pd.DataFrame:
    """Per variant: how far actual sends trailed intended sends (the pacer's own lag): n, late
    (more than ``late_after_ms`` behind), late_share, p50/p99/max delay in ms."""
    columns = ["variant", "n", "late", "late_share", "p50_ms", "p99_ms", "max_ms"]
    rows = headline_rows(client, ["variant", "sent_at_ms", "intended_at_ms"])
    if rows.empty:
        return pd.DataFrame(columns=columns)
    delay = (rows["sent_at_ms"] - rows["intended_at_ms"]).rename("delay")
    grouped = pd.DataFrame({"variant": rows["variant"], "delay": delay}).groupby(
        "variant", observed=True
    )["delay"]
    result = pd.concat(
        {
            "n": grouped.size(),
            "late": grouped.agg(lambda values: int((values > late_after_ms).sum())),
            "p50_ms": grouped.quantile(0.5),
            "p99_ms": grouped.quantile(0.99),
            "max_ms": grouped.max(),
        },
        axis=1,
    ).reset_index()
    result["late_share"] = result["late"] / result["n"]
    return result[columns]
