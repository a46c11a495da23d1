"""Client-side response latency: summaries with CIs, throughput over time, outcomes, cold starts.

Latency counts the requests the API answered with success (see :func:`answered_rows`). Warm-up
rows are excluded from headline numbers and summarised apart. Time axes are seconds since the
trial's first intended send, pooled across trials.

The passes read the engine's views (``client``, ``server``: :mod:`analysis.engine`) and return
small frames. Their figures are those the pandas passes gave: order statistics by rank, pandas'
group-quantile formula where pandas' groupby quantile was used (:func:`engine.group_quantiles`),
numpy's where numpy's was; float bins computed with the same operations in the same order.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis import engine

__all__ = [
    "ANSWERED",
    "HEADLINE",
    "SUCCESS_OUTCOMES",
    "answered",
    "answered_rows",
    "cold_warm_summary",
    "headline_rows",
    "latency_over_time",
    "latency_summary",
    "latency_summary_and_pooled",
    "outcome_rates",
    "per_trial_quantiles",
    "send_delay_summary",
    "throughput_over_time",
    "variants",
    "warmup_rows",
]

SUCCESS_OUTCOMES = ("accepted", "succeeded")
LATENCY_COLUMNS = ("latency_ms", "latency_from_intended_ms")

# The same row selections as SQL conditions on the client view.
HEADLINE = "NOT coalesce(warmup, false)"
WARMUP = "coalesce(warmup, false)"
SUCCESS = "outcome IN ('accepted', 'succeeded')"
ANSWERED = f"{HEADLINE} AND {SUCCESS}"


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


def answered(
    connection: duckdb.DuckDBPyConnection, columns: list[str], *, warmup: bool = False
) -> duckdb.DuckDBPyRelation:
    """:func:`answered_rows` of the client view as a relation (nothing is read until used)."""
    select = ", ".join(f'"{column}"' for column in columns)
    return connection.sql(
        f"SELECT {select} FROM client WHERE {WARMUP if warmup else HEADLINE} AND {SUCCESS}"
    )


def variants(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The variants the client view holds, sorted."""
    found = connection.sql("SELECT DISTINCT variant FROM client WHERE variant IS NOT NULL")
    return sorted(str(row[0]) for row in found.fetchall())


def latency_summary(connection: duckdb.DuckDBPyConnection, *, warmup: bool = False) -> pd.DataFrame:
    """Per variant and measure ("latency_ms" from actual send, "latency_from_intended_ms" from
    intended send) of successful answers: n, mean, p50..p99.9, max with 95% CIs (intervals
    cover the variation between trials too: analysis.stats.describe). ``warmup=True``
    summarises warm-up."""
    return latency_summary_and_pooled(connection, warmup=warmup)[0]


def latency_summary_and_pooled(
    connection: duckdb.DuckDBPyConnection,
    *,
    warmup: bool = False,
    rows: duckdb.DuckDBPyRelation | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """:func:`latency_summary` and, per measure, the pooled summary per variant (intervals
    not widened by the trials: what comparisons use), from the same pass. ``rows``: the
    answered rows (variant, trial and both measures) when the caller has them materialised."""
    if rows is None:
        query = answered(connection, ["variant", "trial", *LATENCY_COLUMNS], warmup=warmup)
        with engine.materialized(connection, query.sql_query()) as table:
            return latency_summary_and_pooled(connection, warmup=warmup, rows=table)
    parts, pooled = [], {}
    for column in LATENCY_COLUMNS:
        summary, pooled[column] = engine.describe_pooled_and_trials(
            connection, rows, ["variant"], column, "trial"
        )
        summary.insert(1, "measure", column)
        parts.append(summary)
    return pd.concat(parts, ignore_index=True), pooled


def _quantile_name(q: float) -> str:
    return f"q{round(q * 1000):04d}"


def per_trial_quantiles(
    connection: duckdb.DuckDBPyConnection,
    column: str = "latency_ms",
    quantiles: tuple[float, ...] = (0.5, 0.99),
) -> pd.DataFrame:
    """One row per (variant, trial): the given quantiles of ``column`` over successful answers
    (pandas' groupby quantile; for tests across trials)."""
    rows = answered(connection, ["variant", "trial", column])
    result = engine.group_quantiles(connection, rows, ["variant", "trial"], column, quantiles)
    return result.drop(columns="n").rename(columns={q: _quantile_name(q) for q in quantiles})


def outcome_rates(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per variant and outcome: count and share of headline requests."""
    result = connection.sql(
        f"""
        SELECT variant, outcome, count(*) AS count FROM client
        WHERE {HEADLINE} AND variant IS NOT NULL AND outcome IS NOT NULL
        GROUP BY ALL ORDER BY variant, outcome
        """
    ).df()
    totals = result.groupby("variant")["count"].transform("sum")
    result["share"] = result["count"] / totals
    return result


def _double(value: float) -> str:
    """A float as a SQL DOUBLE literal of exactly that value (not a DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _binned(bin_s: float) -> str:
    """Client rows with the trial's origin (its first intended send, warm-up included) and
    ``t_s``: the intended send's bin in s since it, computed as the pandas pass did."""
    return f"""
        SELECT *,
            floor((intended_at_ms - origin_) / 1000 / {_double(bin_s)}) * {_double(bin_s)} AS t_s
        FROM (
            SELECT *, min(intended_at_ms) OVER (PARTITION BY variant, trial) AS origin_
            FROM client WHERE variant IS NOT NULL AND trial IS NOT NULL
        )
    """


def throughput_over_time(connection: duckdb.DuckDBPyConnection, bin_s: float = 1.0) -> pd.DataFrame:
    """Per variant and time bin (s since trial start): offered rate (by intended send time) and
    achieved rate (successful answers by completion time), per second, averaged over trials."""
    binned = (
        f"SELECT variant, trial, t_s, origin_, sent_at_ms, latency_ms, outcome "
        f"FROM ({_binned(bin_s)})"
    )
    with engine.materialized(connection, binned) as table:
        counts = _throughput_counts(connection, table.alias, bin_s)
    if counts.empty:
        return pd.DataFrame(columns=["variant", "t_s", "offered_per_s", "achieved_per_s"])
    trials = dict(
        connection.sql(
            "SELECT variant, count(DISTINCT trial) FROM client WHERE variant IS NOT NULL "
            "GROUP BY ALL"
        ).fetchall()
    )
    per_trial_bin = counts["variant"].map(trials).astype(float) * bin_s
    counts["offered_per_s"] = counts.pop("offered") / per_trial_bin
    counts["achieved_per_s"] = counts.pop("achieved") / per_trial_bin
    return counts


def _throughput_counts(
    connection: duckdb.DuckDBPyConnection, binned: str, bin_s: float
) -> pd.DataFrame:
    """Per variant and bin: requests offered (by intended send) and answered with success
    (by completion: sent_at_ms + latency_ms), as floats."""
    width = _double(bin_s)
    return connection.sql(
        f"""
        WITH offered AS (
            SELECT variant, t_s, count(*) AS offered FROM "{binned}"
            WHERE t_s IS NOT NULL AND NOT isnan(t_s) GROUP BY ALL
        ),
        achieved AS (
            SELECT variant, t_s, count(*) AS achieved FROM (
                SELECT variant,
                    floor(((sent_at_ms + latency_ms) - origin_) / 1000 / {width}) * {width} AS t_s
                FROM "{binned}" WHERE {SUCCESS}
            ) WHERE t_s IS NOT NULL AND NOT isnan(t_s) GROUP BY ALL
        )
        SELECT variant, t_s,
            CAST(coalesce(offered, 0) AS DOUBLE) AS offered,
            CAST(coalesce(achieved, 0) AS DOUBLE) AS achieved
        FROM offered FULL OUTER JOIN achieved USING (variant, t_s)
        ORDER BY variant, t_s
        """
    ).df()


def latency_over_time(connection: duckdb.DuckDBPyConnection, bin_s: float = 1.0) -> pd.DataFrame:
    """Per variant and time bin (s since trial start, by intended send): n, p50 and p99 of
    latency from actual and from intended send (pandas' groupby quantile); warm-up bins are
    left out (the time axis starts at the trial's start, warm-up included)."""
    columns = ["variant", "t_s", "n", "p50_ms", "p99_ms", "p99_from_intended_ms"]
    query = (
        f"SELECT variant, t_s, latency_ms, latency_from_intended_ms FROM ({_binned(bin_s)}) "
        f"WHERE {HEADLINE} AND t_s IS NOT NULL AND NOT isnan(t_s)"
    )
    with engine.materialized(connection, query) as rows:
        sizes = rows.aggregate("variant, t_s, count(*) AS n", "variant, t_s")
        sizes = sizes.order("variant, t_s").df()
        if sizes.empty:
            return pd.DataFrame(columns=columns)
        by = ["variant", "t_s"]
        sent = engine.group_quantiles(connection, rows, by, "latency_ms", (0.5, 0.99))
        intended = engine.group_quantiles(connection, rows, by, "latency_from_intended_ms", (0.99,))
    result = sizes.assign(
        p50_ms=sent[0.5].to_numpy(),
        p99_ms=sent[0.99].to_numpy(),
        p99_from_intended_ms=intended[0.99].to_numpy(),
    )
    return result[columns]


def cold_warm_summary(connection: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Latency summary per variant split by the server item's ``cold_start`` (joined on
    variant and request_id, the first item in read order when stored twice); headline rows
    without a stored item are "unknown".

    The join is tried first against the stored items as they are: when no headline row finds
    more than one item (as many joined rows as headline rows), each row's one item is its
    first and the result is final. Otherwise the items are first reduced to the first one per
    (variant, request_id). At 20M rows the plain join takes ~7 s, the reduction ~5-10 s more."""
    joined = f"""
        SELECT client.variant, client.latency_ms,
            CASE WHEN starts.cold_start IS NULL THEN 'unknown'
                 WHEN starts.cold_start THEN 'cold' ELSE 'warm' END AS start
        FROM client LEFT JOIN {{items}} AS starts
            ON client.variant = starts.variant AND client.request_id = starts.request_id
        WHERE {HEADLINE.replace("warmup", "client.warmup")}
    """
    first_items = """(
        SELECT variant, request_id,
            arg_min_null(cold_start, (part_file, part_row)) AS cold_start
        FROM server WHERE request_id IS NOT NULL GROUP BY ALL
    )"""
    headline = connection.sql(f"SELECT count(*) FROM client WHERE {HEADLINE}").fetchall()[0][0]
    with engine.materialized(connection, joined.format(items="server")) as rows:
        if rows.aggregate("count(*)").fetchall()[0][0] == headline:
            return engine.describe_groups(connection, rows, ["variant", "start"], "latency_ms")
    with engine.materialized(connection, joined.format(items=first_items)) as rows:
        return engine.describe_groups(connection, rows, ["variant", "start"], "latency_ms")


def send_delay_summary(
    connection: duckdb.DuckDBPyConnection, late_after_ms: float = 10.0
) -> pd.DataFrame:
    """Per variant: how far actual sends trailed intended sends (the pacer's own lag): n, late
    (more than ``late_after_ms`` behind), late_share, p50/p99/max delay in ms."""
    columns = ["variant", "n", "late", "late_share", "p50_ms", "p99_ms", "max_ms"]
    query = (
        "SELECT variant, sent_at_ms - intended_at_ms AS delay FROM client "
        f"WHERE {HEADLINE} AND variant IS NOT NULL"
    )
    result = connection.sql(
        f"""
        SELECT variant, count(*) AS n,
            count(*) FILTER (WHERE delay > {_double(late_after_ms)}) AS late,
            max(delay) FILTER (WHERE NOT isnan(delay)) AS max_ms
        FROM ({query}) GROUP BY ALL ORDER BY variant
        """
    ).df()
    if result.empty:
        return pd.DataFrame(columns=columns)
    quantiles = engine.group_quantiles(
        connection, connection.sql(query), ["variant"], "delay", (0.5, 0.99)
    )
    result["p50_ms"] = quantiles[0.5].to_numpy()
    result["p99_ms"] = quantiles[0.99].to_numpy()
    result["late_share"] = result["late"] / result["n"]
    return result[columns]
