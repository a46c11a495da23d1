"""Per-request accounting: every request the client meant to send ends in exactly one class.

A request is one slot of the schedule: its attempts share (variant, trial, worker,
intended_at_ms), because a client retry keeps the first attempt's intended time. Its class
comes from its last attempt and, where one was stored, its item:

storage_first
    succeeded / failed: the item is SUCCEEDED / FAILED (error recorded on it);
    parked: the item is on the failure destination and not terminal (data in the table,
    processing abandoned); unresolved: the item was still PENDING, or not read, when collection
    hit its deadline (the trial's ``unfinished`` count); lost: answered 202 and gone once
    collection had settled; rejected: a non-2xx answer (by status in ``rejected_by_status``);
    no_answer: a timeout or connection error with no item to match; dropped: never sent.
direct
    succeeded: a 200 (or a stored item); rejected_permanently: 4xx other than 429, the client
    was told and nothing was stored (poison, invalid body); failed_transiently: 5xx or 429
    (502 outage, 500/429 throttle), nothing stored; no_answer: timeout or connection error;
    dropped: never sent.

The headline ``lost`` keeps the seed's sense, the data never reached the table: for
storage_first lost + rejected + no_answer, for direct every class but succeeded and dropped.
``dropped`` is NaN when no trial of the variant counted its dropped sends.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Mapping

import duckdb
import pandas as pd

from analysis import engine

__all__ = ["CLASSES", "REQUEST_KEY", "accounting", "class_counts", "request_classes", "tally"]

REQUEST_KEY = ["variant", "trial", "worker", "intended_at_ms"]
CLASSES = {
    "storage_first": (
        "succeeded", "failed", "parked", "unresolved", "lost", "rejected", "no_answer", "dropped",
    ),
    "direct": (
        "succeeded", "rejected_permanently", "failed_transiently", "no_answer", "dropped",
    ),
}  # fmt: skip
_NO_ANSWER = ("timeout", "connection_error")
_REFUSED = ("rejected", "rejected_permanently", "failed_transiently")


def _open_trials(trials: pd.DataFrame) -> list[int]:
    """storage_first trials whose collection ended with items still unfinished."""
    if trials.empty or "unfinished" not in trials:
        return []
    rows = trials.loc[(trials["unfinished"].fillna(0) > 0) & (trials["variant"] == "storage_first")]
    return sorted({int(trial) for trial in rows["trial"]})


# The last attempt of a request: highest attempt number, on a tie the last row read.
_LAST = "(coalesce(attempt, 1)::HUGEINT * 9223372036854775808 + read_order)"
# A client row's request key against a table ``keys_`` of keys (NULL matches NULL, as in GROUP BY).
_SAME_REQUEST = (
    "c.variant IS NOT DISTINCT FROM keys_.variant AND c.trial IS NOT DISTINCT FROM keys_.trial "
    "AND coalesce(c.worker, '') = keys_.worker "
    "AND c.intended_at_ms IS NOT DISTINCT FROM keys_.intended_at_ms"
)


@contextlib.contextmanager
def _requests(connection: duckdb.DuckDBPyConnection) -> Iterator[str]:
    """SQL of one row per request (REQUEST_KEY, a missing worker is ''): outcome,
    status_code and request_id of its last attempt (highest attempt number; on a tie the last
    one read, ORDER BY part_file, part_row) and attempts (the highest attempt number).

    A request with one client row (nearly all) is that row, read as it is; only the keys of
    requests with several rows (retries, a row read twice) are aggregated, into temporary
    tables, trial by trial (a request's rows share its trial). Aggregating every request
    instead held ~80 MB more and took ~0.3 s more at 1M + 1M rows."""
    tag = uuid.uuid4().hex
    keys, several = f"keys_{tag}", f"several_{tag}"
    trials = [row[0] for row in connection.execute("SELECT DISTINCT trial FROM client").fetchall()]
    try:
        connection.execute(
            f'CREATE TEMP TABLE "{keys}" (variant VARCHAR, trial INTEGER, worker VARCHAR, '
            "intended_at_ms DOUBLE)"
        )
        for trial in trials:
            where = "trial IS NULL" if trial is None else f"trial = {int(trial)}"
            connection.execute(
                f"""INSERT INTO "{keys}" SELECT variant, trial, coalesce(worker, ''),
                intended_at_ms FROM client WHERE {where} GROUP BY ALL HAVING count(*) > 1"""
            )
        connection.execute(
            f"""CREATE TEMP TABLE "{several}" AS
            SELECT c.variant, c.trial, coalesce(c.worker, '') AS worker, c.intended_at_ms,
                   arg_max_null(c.outcome, {_LAST}) AS outcome,
                   arg_max_null(c.status_code, {_LAST}) AS status_code,
                   arg_max_null(c.request_id, {_LAST}) AS request_id,
                   max(coalesce(c.attempt, 1)) AS attempts
            FROM {engine.in_read_order("client")} AS c SEMI JOIN "{keys}" AS keys_
                 ON {_SAME_REQUEST}
            GROUP BY ALL"""
        )
        yield f"""
            SELECT c.variant, c.trial, coalesce(c.worker, '') AS worker, c.intended_at_ms,
                   c.outcome, c.status_code, c.request_id,
                   CAST(coalesce(c.attempt, 1) AS SMALLINT) AS attempts
            FROM client AS c ANTI JOIN "{keys}" AS keys_ ON {_SAME_REQUEST}
            UNION ALL
            SELECT variant, trial, worker, intended_at_ms, outcome, status_code, request_id,
                   CAST(attempts AS SMALLINT) FROM "{several}"
        """
    finally:
        connection.execute(f'DROP TABLE IF EXISTS "{several}"')
        connection.execute(f'DROP TABLE IF EXISTS "{keys}"')


ITEMS_PER_BUCKET = 250_000
MAX_BUCKETS = 4
"""Items matched to requests at once: the tally splits the items (and the requests) into
buckets of about ITEMS_PER_BUCKET by a hash of the request id, each aggregated and joined on
its own (1M + 1M rows with 36-character ids: one bucket ~200 MB above the base, four ~50 MB).
Each bucket reads every server row again, so there are at most MAX_BUCKETS; past 1M items the
engine's memory limit bounds a bucket (DuckDB spills its aggregation)."""


def _buckets(connection: duckdb.DuckDBPyConnection) -> int:
    found = connection.execute("SELECT count(*) FROM server").fetchone()
    items = found[0] if found else 0
    return min(MAX_BUCKETS, max(1, math.ceil(items / ITEMS_PER_BUCKET)))


def _in_bucket(column: str, buckets: int, bucket: int) -> str:
    """SQL: ``column`` (a request id, NULL too) falls in bucket ``bucket`` of ``buckets``."""
    return "true" if buckets == 1 else f"hash({column}) % {buckets} = {bucket}"


@contextlib.contextmanager
def _items(connection: duckdb.DuckDBPyConnection, where: str) -> Iterator[str]:
    """A temporary table of one row per stored item (variant, request_id; a NULL id is one
    item) among the server rows meeting ``where``: last_status, the status of the last row
    read with its id (a re-collected item is read again later), and first_status,
    first_duplicates of the first (the item is counted once, by that row)."""
    name = f"items_{uuid.uuid4().hex}"
    try:
        connection.execute(
            f"""CREATE TEMP TABLE "{name}" AS
            SELECT variant, request_id, arg_max_null(status, read_order) AS last_status,
                   arg_min_null(status, read_order) AS first_status,
                   arg_min_null(duplicates, read_order) AS first_duplicates
            FROM {engine.in_read_order("server")}
            WHERE variant IS NOT NULL AND {where} GROUP BY ALL"""
        )
        yield name
    finally:
        connection.execute(f'DROP TABLE IF EXISTS "{name}"')


def _classes_query(trials: pd.DataFrame, requests: str, items: str, where: str = "true") -> str:
    """SQL over the requests (:func:`_requests`' SQL) meeting ``where``, ``items`` (:func:`_items`)
    and the parked view: one row per request with REQUEST_KEY, request_id, outcome,
    status_code, attempts and class.

    The request's item is the last one read with its request_id, parked means its id is
    among the variant's parked records."""
    no_answer = engine.sql_list(_NO_ANSWER)
    open_trials = engine.sql_list(_open_trials(trials))
    return f"""
    WITH parked_ids AS (
        SELECT DISTINCT variant, request_id AS parked_id FROM parked
        WHERE request_id IS NOT NULL
    )
    SELECT r.variant, r.trial, r.worker, r.intended_at_ms, r.request_id AS request_id,
           r.outcome AS outcome, r.status_code AS status_code, r.attempts,
           CASE
             WHEN r.variant IS NULL THEN ''
             WHEN r.variant = 'storage_first' THEN CASE
               WHEN (i.item_status IS NOT NULL OR r.outcome = 'accepted') THEN CASE
                 WHEN i.item_status = 'SUCCEEDED' THEN 'succeeded'
                 WHEN i.item_status = 'FAILED' THEN 'failed'
                 WHEN p.parked_id IS NOT NULL THEN 'parked'
                 WHEN i.item_status IS NOT NULL OR r.trial IN {open_trials} THEN 'unresolved'
                 ELSE 'lost' END
               WHEN r.outcome IN {no_answer} THEN 'no_answer'
               ELSE 'rejected' END
             ELSE CASE
               WHEN r.outcome = 'succeeded' OR i.item_status IS NOT NULL THEN 'succeeded'
               WHEN r.outcome IN ('server_error', 'throttled')
                    OR coalesce(r.status_code, 0) >= 500 THEN 'failed_transiently'
               WHEN r.outcome = 'rejected' THEN 'rejected_permanently'
               WHEN r.outcome IN {no_answer} THEN 'no_answer'
               ELSE 'failed_transiently' END
           END AS class
    FROM (SELECT * FROM ({requests}) WHERE {where}) r
    LEFT JOIN (SELECT variant, request_id, last_status AS item_status FROM "{items}"
               WHERE request_id IS NOT NULL) i
           ON i.variant = r.variant AND i.request_id = r.request_id
    LEFT JOIN parked_ids p ON p.variant = r.variant AND p.parked_id = r.request_id
    """


def request_classes(connection: duckdb.DuckDBPyConnection, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per sent request (client view): REQUEST_KEY, request_id, outcome, status_code,
    attempts, class; sorted by REQUEST_KEY. One row per request in memory: for tests and
    inspection; :func:`accounting` counts them in the engine."""
    with _requests(connection) as requests, _items(connection, "true") as items:
        return connection.execute(
            f"SELECT * FROM ({_classes_query(trials, requests, items)}) "
            "ORDER BY variant, trial, worker, intended_at_ms"
        ).df()


def _dropped(trials: pd.DataFrame, variant: str) -> float:
    if trials.empty or "dropped_sends" not in trials:
        return math.nan
    counted = trials.loc[trials["variant"] == variant, "dropped_sends"].dropna()
    return float(counted.sum()) if len(counted) else math.nan


def class_counts(counts: Mapping[str, int], trials: pd.DataFrame, variant: str) -> dict[str, int]:
    """``{class: count}`` of one variant from its requests per class (``counts``), summing to
    ``sent`` (dropped: 0 when not counted)."""
    dropped = _dropped(trials, variant)
    result = {name: int(counts.get(name, 0)) for name in CLASSES.get(variant, ())}
    result["dropped"] = 0 if math.isnan(dropped) else int(dropped)
    return result


def _tallies(
    connection: duckdb.DuckDBPyConnection, trials: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(requests per variant, class and status code (0: none), with how many were retried
    and how many were answered with success; per variant the items collected, those PENDING
    when first read and their duplicates), bucket by bucket (:data:`ITEMS_PER_BUCKET`): every
    request and every item falls in exactly one bucket, so the counts add up."""
    buckets = _buckets(connection)
    tallies, collected = [], []
    with _requests(connection) as requests:
        for bucket in range(buckets):
            with _items(connection, _in_bucket("request_id", buckets, bucket)) as items:
                query = _classes_query(
                    trials, requests, items, _in_bucket("request_id", buckets, bucket)
                )
                tallies.append(
                    connection.execute(
                        f"""
                        SELECT variant, class, coalesce(status_code, 0) AS code,
                               count(*) AS requests,
                               count(*) FILTER (WHERE attempts > 1) AS retried,
                               count(*) FILTER (WHERE outcome IN ('accepted', 'succeeded'))
                               AS accepted
                        FROM ({query}) WHERE variant IS NOT NULL GROUP BY ALL
                        """
                    ).df()
                )
                collected.append(
                    connection.execute(
                        f"""
                        SELECT variant, count(*) AS items,
                               count(*) FILTER (WHERE first_status = 'PENDING') AS pending,
                               coalesce(sum(coalesce(first_duplicates, 0)), 0) AS duplicates
                        FROM "{items}" GROUP BY variant
                        """
                    ).df()
                )
    return _summed(tallies, ["variant", "class", "code"]), _summed(collected, ["variant"])


def _summed(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """The buckets' counts added per key (integers: exact)."""
    whole = pd.concat(frames, ignore_index=True)
    if len(frames) == 1 or whole.empty:
        return whole
    return whole.groupby(keys, as_index=False, sort=True).sum()


def _per_variant(connection: duckdb.DuckDBPyConnection, query: str) -> dict[str, dict[str, int]]:
    frame = connection.execute(query).df()
    return {
        str(row["variant"]): {key: int(value) for key, value in row.items() if key != "variant"}
        for row in frame.to_dict("records")
    }


def accounting(
    client: pd.DataFrame,
    server: pd.DataFrame,
    parked: pd.DataFrame,
    trials: pd.DataFrame,
    redriven: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`tally` of in-memory frames (tests, small subsets)."""
    with engine.frames_connection(client=client, server=server, parked=parked) as connection:
        return tally(connection, trials, redriven)


def tally(
    connection: duckdb.DuckDBPyConnection,
    trials: pd.DataFrame,
    redriven: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per variant: sent (requests meant, dropped included), recorded, attempts, retried, the
    classes of CLASSES, accepted, client_errors, pending, duplicates, lost (the headline, see
    the module docstring; NaN when no item of the variant was collected), redriven (requests a
    re-drive processed again), redriven_succeeded, items_collected, dropped_counted,
    rejected_by_status ("502: 3, 400: 1"). Counted in the engine over the views client,
    server and parked (``engine.register_run_folder``)."""
    tallies, items_by_variant = _tallies(connection, trials)
    sent_rows = _per_variant(
        connection,
        """
        SELECT variant, count(*) AS attempts,
               count(*) FILTER (WHERE NOT coalesce(outcome IN ('accepted', 'succeeded'), false))
               AS client_errors
        FROM client WHERE variant IS NOT NULL GROUP BY variant
        """,
    )
    # An item is counted once, by the first row read with its request_id.
    collected = {
        str(row["variant"]): {key: int(row[key]) for key in ("items", "pending", "duplicates")}
        for row in items_by_variant.to_dict("records")
    }
    rows = []
    for variant, mine in tallies.groupby("variant", observed=True):
        variant = str(variant)
        counts = class_counts(mine.groupby("class")["requests"].sum().to_dict(), trials, variant)
        dropped = _dropped(trials, variant)
        items = collected.get(variant, {"items": 0, "pending": 0, "duplicates": 0})
        if variant == "storage_first":
            never_stored = counts["lost"] + counts["rejected"] + counts["no_answer"]
        else:
            never_stored = sum(
                counts[name] for name in ("rejected_permanently", "failed_transiently", "no_answer")
            )
        again = (
            redriven.loc[redriven["variant"] == variant]
            if redriven is not None and len(redriven)
            else pd.DataFrame(columns=["request_id", "status_after"])
        )
        again = again.drop_duplicates("request_id", keep="last")
        refused = mine.loc[mine["class"].isin(_REFUSED)]
        by_status = refused.groupby("code")["requests"].sum().sort_index()
        recorded = int(mine["requests"].sum())
        rows.append(
            {
                "variant": variant,
                "sent": recorded + counts["dropped"],
                "recorded": recorded,
                "attempts": sent_rows[variant]["attempts"],
                "retried": int(mine["retried"].sum()),
                **counts,
                "accepted": int(mine["accepted"].sum()),
                "client_errors": sent_rows[variant]["client_errors"],
                "pending": items["pending"],
                "duplicates": items["duplicates"],
                "lost": never_stored if items["items"] else math.nan,
                "redriven": len(again),
                "redriven_succeeded": int((again["status_after"] == "SUCCEEDED").sum()),
                "items_collected": items["items"],
                "dropped_counted": not math.isnan(dropped),
                "rejected_by_status": ", ".join(
                    f"{int(code)}: {int(n)}" for code, n in by_status.items()
                ),
            }
        )
    return pd.DataFrame(rows)
