"""The embedded analytical engine (DuckDB) for passes over per-request tables, exact.

Why DuckDB: it is embedded (a wheel, no server), reads Parquet parts and pandas/Arrow frames
in place, sorts and groups out of core (it spills to a temporary directory past its memory
limit), runs in parallel, and its window functions give exact order statistics. Polars was the
other candidate; its streaming engine does not spill sorts as reliably, and DuckDB's SQL keeps
each pass one readable statement.

Exactness: quantiles here are numpy's ``method="linear"`` (Hyndman-Fan type 7), computed from
the two order statistics DuckDB fetches by rank, interpolated with numpy's own formula
(``_lerp``), so every figure is the one :mod:`analysis.stats` gives on the same rows, bit for
bit; their intervals use the same binomial ranks (:func:`analysis.stats._ranks`).

The memory limit: :func:`connect` takes it (``"2GB"``, ``"512MB"``); None means
:data:`DEFAULT_MEMORY_FRACTION` of the machine's memory, at most :data:`DEFAULT_MEMORY_CAP_MB`
(``asyncbench report --memory-limit``).
Spill files go to a fresh temporary directory removed when the connection is closed.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import duckdb
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa

from analysis.stats import _Z, QUANTILES, _ranks, describe, trial_interval
from reports import schema

if TYPE_CHECKING:
    from analysis.load import Run

__all__ = [
    "DEFAULT_MEMORY_CAP_MB",
    "DEFAULT_MEMORY_FRACTION",
    "ORDER_COLUMNS",
    "PASS_BYTES_PER_ROW",
    "PASS_WORKERS",
    "ROW_TABLES",
    "Passes",
    "connect",
    "default_memory_limit",
    "describe_fetched",
    "describe_groups",
    "describe_pooled_and_trials",
    "fetch",
    "frames_connection",
    "group_quantiles",
    "in_read_order",
    "linear_quantile",
    "materialized",
    "memory_limit_bytes",
    "ordered_column",
    "pass_workers",
    "quantiles",
    "register_frames",
    "register_run",
    "register_run_folder",
    "registered",
    "run_tables",
    "sql_list",
]

DEFAULT_MEMORY_FRACTION = 0.25
DEFAULT_MEMORY_CAP_MB = 1536
"""The default limit's ceiling: a report's peak then stays near 2 GB whatever the run's size
(20M + 20M rows: 1.9 GB at this limit, 6.2 GB at a quarter of 23 GB, 18% slower); a larger
machine can give more with ``--memory-limit``."""


def default_memory_limit() -> str:
    """A quarter of the machine's memory, at most DEFAULT_MEMORY_CAP_MB, in MB (DuckDB's own
    default is 80% of the memory)."""
    total = psutil.virtual_memory().total
    return f"{min(int(total * DEFAULT_MEMORY_FRACTION / 2**20), DEFAULT_MEMORY_CAP_MB)}MB"


@contextlib.contextmanager
def connect(memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with a memory limit and its own spill directory.

    Memory the limit does not count is kept small: no cache of the parquet parts' bytes (the
    operating system's page cache holds them already) and the allocator hands freed memory
    back once a task has peaked past 32MB rather than 128MB (1M + 1M rows: 539 -> 507 MB peak
    resident)."""
    spill = tempfile.mkdtemp(prefix="asyncbench-engine-")
    connection = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": memory_limit or default_memory_limit(),
            "temp_directory": spill,
            "preserve_insertion_order": False,
            "enable_external_file_cache": False,
            "allocator_flush_threshold": "32MB",
        },
    )
    try:
        yield connection
    finally:
        connection.close()
        shutil.rmtree(spill, ignore_errors=True)


PASS_WORKERS = 2
"""Passes a report runs side by side (:class:`Passes`) when the run is small for the memory
limit (:func:`pass_workers`). A pass alternates between DuckDB, which releases the GIL, and
Python on the small tables it returns; two at once keep both cores busy (1M + 1M rows: 6.5 ->
5.2 s). On a large run each query keeps both cores busy on its own, and two passes sharing
the memory limit spill more (20M + 20M rows: 83 s and 1.85 GB one at a time, 95 s and 2.1 GB
two at a time)."""

PASS_BYTES_PER_ROW = 220
"""Memory the largest pass holds per client row (1M + 1M rows with 36-character ids: the
tally and the cold/warm join, ~140-220 MB): two passes run at once only while two of them fit
in the memory limit."""

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def memory_limit_bytes(connection: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory limit in bytes (DuckDB reports it as e.g. "1.4 GiB")."""
    found = connection.execute("SELECT current_setting('memory_limit')").fetchone()
    text = str(found[0] if found else "").strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz ")
    return int(float(number) * _UNITS[text[len(number) :].strip()])


def pass_workers(connection: duckdb.DuckDBPyConnection, rows: int) -> int:
    """PASS_WORKERS when two passes over ``rows`` client rows fit in the memory limit at
    once (PASS_BYTES_PER_ROW each), else 1."""
    fits = 2 * rows * PASS_BYTES_PER_ROW <= memory_limit_bytes(connection)
    return PASS_WORKERS if fits else 1


_T = TypeVar("_T")


class Passes:
    """Runs independent passes of one run side by side, each on a cursor of its own over the
    same database (the views, the memory limit and the spill directory are shared; temporary
    tables and registered frames are a cursor's own). ``submit(function, *args)`` calls
    ``function(cursor, *args)`` and returns its Future; leaving the ``with`` waits for every
    pass and closes the cursors. Views over registered frames (:func:`register_frames`) are
    visible to the connection that registered them only, so with ``workers=1`` every pass runs
    at once on the connection itself, in submission order."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, workers: int = PASS_WORKERS):
        self._connection = connection
        self._pool = ThreadPoolExecutor(workers, "pass") if workers > 1 else None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        # The cores shared out between the passes: each query then uses its share, not all of
        # them (1M + 1M rows, 2 cores: 5.0 -> 4.9 s).
        self._threads = 0
        if self._pool is not None:
            found = connection.execute("SELECT current_setting('threads')").fetchone()
            self._threads = int(found[0]) if found else 1
            connection.execute(f"SET threads = {max(1, self._threads // workers)}")

    def __enter__(self) -> Passes:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        for cursor in self._cursors:
            cursor.close()
        if self._pool is not None:
            self._connection.execute(f"SET threads = {self._threads}")

    def submit(
        self,
        function: Callable[..., _T],
        *args: Any,
        **kwargs: Any,
    ) -> Future[_T]:
        if self._pool is None:
            future: Future[_T] = Future()  # done at once; an error is raised here
            future.set_result(function(self._connection, *args, **kwargs))
            return future
        return self._pool.submit(self._call, function, *args, **kwargs)

    def _call(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._connection.cursor()
            self._local.cursor = cursor
            with self._lock:
                self._cursors.append(cursor)
        return function(cursor, *args, **kwargs)


# The per-request tables passes read through the engine, under these view names.
ROW_TABLES: dict[str, schema.TableSpec] = {
    "client": schema.CLIENT,
    "server": schema.SERVER,
    "parked": schema.PARKED,
    "metrics": schema.METRICS,
}

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
}


def _sql_type(kind: pa.DataType) -> str:
    return _DUCKDB_TYPES[kind]


ORDER_COLUMNS = ("part_file", "part_row")


def _columns(spec: schema.TableSpec, present: set[str]) -> str:
    """The spec's columns in its order and types; a column no part has is NULL."""
    return ", ".join(
        f'CAST("{field.name}" AS {_sql_type(field.type)}) AS "{field.name}"'
        if field.name in present
        else f'CAST(NULL AS {_sql_type(field.type)}) AS "{field.name}"'
        for field in spec.schema
    )


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def register_run_folder(connection: duckdb.DuckDBPyConnection, run_dir: Path) -> None:
    """Views ``client``, ``server``, ``parked`` and ``metrics`` over the run folder's parquet
    parts, read in place (nothing is loaded until a query runs). Each view has exactly the
    run-folder schema's columns and types; a missing optional column is NULL, no part at all
    is an empty view. Rows have no order: a query that needs the order pandas read them in
    (parts in name order, rows in file order) says ``ORDER BY part_file, part_row`` (two
    extra columns every view has). A damaged part raises RunFolderError."""
    for name, spec in ROW_TABLES.items():
        paths = schema.check_parts(run_dir, spec)
        if not paths:
            connection.execute(
                f'CREATE OR REPLACE VIEW "{name}" AS SELECT {_columns(spec, set())}, '
                "CAST(NULL AS VARCHAR) AS part_file, CAST(NULL AS BIGINT) AS part_row WHERE false"
            )
            continue
        files = "[" + ", ".join(_quote(path) for path in paths) + "]"
        source = (
            f"read_parquet({files}, union_by_name = true, filename = 'part_file', "
            "file_row_number = true)"
        )
        present = {
            row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        }
        connection.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT {_columns(spec, present)}, '
            f"part_file, CAST(file_row_number AS BIGINT) AS part_row FROM {source}"
        )


def register_frames(connection: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> None:
    """The same views over in-memory frames (tests, synthetic runs): ``register_frames(
    connection, client=frame, server=...)``; a table not given is an empty view."""
    unknown = set(frames) - set(ROW_TABLES)
    if unknown:
        raise ValueError(f"unknown table(s) {sorted(unknown)}; known: {sorted(ROW_TABLES)}")
    for name, spec in ROW_TABLES.items():
        frame = frames.get(name)
        if frame is None:
            connection.execute(
                f'CREATE OR REPLACE VIEW "{name}" AS SELECT {_columns(spec, set())}, '
                "CAST(NULL AS VARCHAR) AS part_file, CAST(NULL AS BIGINT) AS part_row WHERE false"
            )
            continue
        source = f"{name}_frame"
        connection.register(source, frame.assign(part_row_=np.arange(len(frame), dtype="int64")))
        connection.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS '
            f"SELECT {_columns(spec, set(frame.columns))}, '' AS part_file, "
            f'part_row_ AS part_row FROM "{source}"'
        )


def linear_quantile(lower: float, upper: float, n: int, q: float) -> float:
    """numpy's linear quantile from the order statistics at floor((n-1)q) and the next one
    (``numpy.lib._function_base_impl._lerp``, the same float operations in the same order)."""
    virtual = (n - 1) * q
    gamma = virtual - math.floor(virtual)
    difference = upper - lower
    if gamma >= 0.5:
        return upper - difference * (1 - gamma)
    return lower + difference * gamma


def _needed_ranks(n: int, probabilities: Sequence[float], bounds: bool) -> set[int]:
    """0-based ranks whose values the quantiles (and with ``bounds`` their intervals) need."""
    ranks = {n - 1}
    for q in probabilities:
        below = math.floor((n - 1) * q)
        ranks.update((below, min(below + 1, n - 1)))
        if bounds:
            lower_rank, upper_rank = _ranks(n, q)
            ranks.update(rank - 1 for rank in (lower_rank, upper_rank) if 1 <= rank <= n)
    return ranks


def _order_statistics(
    connection: duckdb.DuckDBPyConnection,
    frame: Rows,
    by: list[str],
    column: str,
    probabilities: Sequence[float],
    bounds: bool,
) -> tuple[pd.DataFrame, dict[tuple[Any, ...], dict[int, float]]]:
    """Per group of ``by``: n (a frame) and the values at the needed 0-based ranks of the
    finite values of ``column`` in ascending order ({group: {rank: value}})."""
    counts, found, _ = _order_statistics_and_moments(
        connection, frame, by, column, probabilities, bounds, moments=False
    )
    return counts, found


def _order_statistics_and_moments(
    connection: duckdb.DuckDBPyConnection,
    frame: Rows,
    by: list[str],
    column: str,
    probabilities: Sequence[float],
    bounds: bool,
    moments: bool,
) -> tuple[
    pd.DataFrame, dict[tuple[Any, ...], dict[int, float]], dict[tuple[Any, ...], tuple[Any, Any]]
]:
    """:func:`_order_statistics`, and with ``moments`` each group's mean and sample standard
    deviation of the finite values ({group: (mean, sd)}, None without such values) from the
    same scan as the counts: ``frame`` is read twice in all (a query over a join runs twice,
    no copy of its rows is kept)."""
    connection.register("rows_in", frame)
    keys = ", ".join(f'"{name}"' for name in by)
    finite = f'isfinite(CAST("{column}" AS DOUBLE))'
    value = f'CAST("{column}" AS DOUBLE)'
    extra = (
        f", avg({value}) FILTER (WHERE {finite}) AS mean_, "
        f"stddev_samp({value}) FILTER (WHERE {finite}) AS sd_"
        if moments
        else ""
    )
    try:
        # Groups as pandas forms them (no missing key), also those without a finite value.
        present = " AND ".join(f'"{name}" IS NOT NULL' for name in by)
        counts = connection.execute(
            f"SELECT {keys}, count(*) FILTER (WHERE {finite}) AS n{extra} FROM rows_in "
            f"WHERE {present} GROUP BY {keys}"
        ).df()
        moment: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        if moments:
            for row in counts.itertuples(index=False):
                moment[tuple(row[: len(by)])] = (row[-2], row[-1])
            counts = counts[[*by, "n"]]
        wanted = []
        for row in counts.itertuples(index=False):
            group = tuple(row[: len(by)])
            if int(row[-1]) == 0:
                continue
            for rank in _needed_ranks(int(row[-1]), probabilities, bounds):
                wanted.append((*group, rank))
        values = _values_at(connection, "rows_in", by, value, finite, counts, wanted)
    finally:
        connection.unregister("rows_in")
    found: dict[tuple[Any, ...], dict[int, float]] = {}
    for key, at in values.items():
        found.setdefault(tuple(key[:-1]), {})[int(key[-1])] = at
    return counts, found, moment


def quantiles(
    connection: duckdb.DuckDBPyConnection,
    frame: Rows,
    by: list[str],
    column: str,
    probabilities: Sequence[float],
) -> pd.DataFrame:
    """Per group of ``by``: n and numpy's linear quantile of the finite values of ``column``
    for each probability (columns named by the probability), groups sorted."""
    counts, found = _order_statistics(connection, frame, by, column, probabilities, False)
    rows = []
    for row in counts.itertuples(index=False):
        group, n = tuple(row[: len(by)]), int(row[-1])
        entry: dict[Any, Any] = dict(zip(by, group, strict=True))
        entry["n"] = n
        if n == 0:
            entry.update(dict.fromkeys(probabilities, math.nan))
            rows.append(entry)
            continue
        at = found[group]
        for q in probabilities:
            below = math.floor((n - 1) * q)
            entry[q] = linear_quantile(at[below], at[min(below + 1, n - 1)], n, q)
        rows.append(entry)
    result = pd.DataFrame(rows, columns=[*by, "n", *probabilities])
    return result.sort_values(by, kind="stable").reset_index(drop=True)


def describe_groups(
    connection: duckdb.DuckDBPyConnection,
    frame: Rows,
    by: list[str],
    column: str,
    trial_column: str | None = None,
) -> pd.DataFrame:
    """:func:`analysis.stats.describe_groups` computed by the engine: the same columns and, for
    the quantiles, max and their intervals, the same numbers. The mean and its interval come
    from DuckDB's sums (equal to numpy's pairwise sums to about 1e-15 relative)."""
    probabilities = list(QUANTILES.values())
    counts, found, moment = _order_statistics_and_moments(
        connection, frame, by, column, probabilities, True, moments=True
    )
    per_trial = None
    if trial_column:
        per_trial = quantiles(connection, frame, [*by, trial_column], column, probabilities)
    rows = []
    for row in counts.itertuples(index=False):
        group, n = tuple(row[: len(by)]), int(row[-1])
        if n == 0:  # as analysis.stats.describe: every figure NaN, one trial
            empty: dict[str, Any] = {**dict(zip(by, group, strict=True)), "n": 0.0}
            for name in ("mean", *QUANTILES, "max"):
                empty[name] = empty[f"{name}_lo"] = empty[f"{name}_hi"] = math.nan
            rows.append(empty)
            continue
        at = found[group]
        mean, sd = float(moment[group][0]), moment[group][1]
        half = _Z * float(sd) / math.sqrt(n) if n > 1 and not pd.isna(sd) else 0.0
        entry: dict[str, Any] = {**dict(zip(by, group, strict=True)), "n": float(n)}
        entry.update(mean=mean, mean_lo=mean - half, mean_hi=mean + half)
        trials = None
        if per_trial is not None:
            mask = np.ones(len(per_trial), dtype=bool)
            for name, key in zip(by, group, strict=True):
                mask &= (per_trial[name] == key).to_numpy()
            trials = per_trial.loc[mask & (per_trial["n"] > 0).to_numpy()]
            entry["trials"] = float(len(trials))
        for name, q in QUANTILES.items():
            below = math.floor((n - 1) * q)
            estimate = linear_quantile(at[below], at[min(below + 1, n - 1)], n, q)
            lower_rank, upper_rank = _ranks(n, q)
            lo = min(at[lower_rank - 1], estimate) if lower_rank >= 1 else math.nan
            hi = max(at[upper_rank - 1], estimate) if upper_rank <= n else math.nan
            if trials is not None and len(trials) >= 2:
                lo, hi = trial_interval(estimate, lo, hi, trials[q].to_numpy())
            entry[name], entry[f"{name}_lo"], entry[f"{name}_hi"] = estimate, lo, hi
        entry["max"] = entry["max_lo"] = entry["max_hi"] = at[n - 1]
        rows.append(entry)
    columns = [*by, "n", "mean", "mean_lo", "mean_hi"]
    for name in (*QUANTILES, "max"):
        columns += [name, f"{name}_lo", f"{name}_hi"]
    if trial_column:
        columns.insert(len(by) + 1, "trials")
    result = pd.DataFrame(rows, columns=columns)
    result = result.sort_values(by, kind="stable").reset_index(drop=True)
    result["n"] = result["n"].astype("int64")
    if trial_column:
        result["trials"] = result["trials"].fillna(1).astype("int64")
    return result


# --- Runs read in place, and pandas' own figures (i14-core) ---------------------------------

Rows: TypeAlias = pd.DataFrame | duckdb.DuckDBPyRelation
"""What the engine's passes read: a frame, or a relation of this connection (a query)."""


def register_run(connection: duckdb.DuckDBPyConnection, run: Run) -> None:
    """The views of :func:`register_run_folder` for a loaded run: over its in-memory frames
    when it was built from frames (``Run.from_frames``), else over its folder's parts."""
    if run.frames is not None:
        register_frames(connection, **run.frames)
    else:
        register_run_folder(connection, run.path)


def fetch(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    columns: Sequence[str] | None = None,
    where: str = "true",
) -> pd.DataFrame:
    """Rows of view ``name`` (one of ROW_TABLES) as a pandas frame with the schema's dtypes,
    in the order pandas reads the folder (parts by name, rows in file order): for a pass that
    still needs a frame. ``where`` is a SQL condition on the view's columns."""
    spec = ROW_TABLES[name]
    names = list(columns) if columns is not None else list(spec.schema.names)
    select = ", ".join(f'"{column}"' for column in names)
    table = connection.sql(
        f'SELECT {select} FROM "{name}" WHERE {where} ORDER BY part_file, part_row'
    ).to_arrow_table()
    frame = table.cast(pa.schema([spec.schema.field(column) for column in names])).to_pandas()
    del table
    pa.default_memory_pool().release_unused()  # the Arrow copy's buffers, back to the system
    return frame


def run_tables(run: Run, names: Sequence[str], memory_limit: str | None = None) -> dict[str, Any]:
    """Whole per-request tables of a run as frames (:func:`fetch`), for analyses of small runs
    that work on frames (tune); a report reads them through the views instead."""
    with connect(memory_limit) as connection:
        register_run(connection, run)
        return {name: fetch(connection, name) for name in names}


@contextlib.contextmanager
def registered(connection: duckdb.DuckDBPyConnection, rows: Rows) -> Iterator[str]:
    """``rows`` registered under a fresh view name for the duration of one pass."""
    name = f"source_{id(rows):x}"
    connection.register(name, rows)
    try:
        yield name
    finally:
        connection.unregister(name)


def group_quantiles(
    connection: duckdb.DuckDBPyConnection,
    rows: Rows,
    by: list[str],
    column: str,
    probabilities: Sequence[float],
    *,
    count_rows: bool = False,
) -> pd.DataFrame:
    """``rows.groupby(by, observed=True)[column].quantile(q)`` as pandas computes it, for each
    q: per group (no missing key; groups sorted), the non-NaN values sorted (infinities
    count), the value at 0-based rank int(q(n-1)) plus (next - value) x fraction, the formula
    of pandas' ``group_quantile`` (not numpy's). Columns: ``by``, n (non-NaN values; with
    ``count_rows``, the group's rows, also those without a value) and one per probability
    (NaN for a group without a value)."""
    keys = ", ".join(f'"{name}"' for name in by)
    present = " AND ".join(f'"{name}" IS NOT NULL' for name in by)
    value = f'CAST("{column}" AS DOUBLE)'
    valued = f"{value} IS NOT NULL AND NOT isnan({value})"
    # Per group and q: the values at 0-based ranks int(q(n-1)) and the next (1-based list
    # indexes; past the end is NULL), the rank computed in DOUBLE as pandas does.
    picks = []
    for index, q in enumerate(probabilities):
        rank = f"CAST(trunc(CAST('{float(q)!r}' AS DOUBLE) * CAST(n - 1 AS DOUBLE)) AS BIGINT)"
        picks.append(f"values_[{rank} + 1] AS low_{index}, values_[{rank} + 2] AS high_{index}")
    with registered(connection, rows) as source:
        found = connection.sql(
            f"""
            SELECT {keys}, n, rows_, {", ".join(picks) if picks else "NULL AS none_"} FROM (
                SELECT {keys}, coalesce(list_sort(list({value}) FILTER (WHERE {valued})), [])
                    AS values_, len(values_) AS n, count(*) AS rows_
                FROM {source} WHERE {present} GROUP BY ALL
            ) ORDER BY {keys}
            """
        ).df()
    result = found[[*by, "rows_" if count_rows else "n"]].rename(columns={"rows_": "n"})
    n = found["n"].to_numpy(dtype=np.int64)
    for index, q in enumerate(probabilities):
        # pandas' arithmetic, elementwise: position = q x (n - 1), its fraction by fmod.
        fraction = np.fmod(q * (n - 1).astype(np.float64), 1.0)
        low = found[f"low_{index}"].to_numpy(dtype=np.float64, na_value=np.nan)
        high = found[f"high_{index}"].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            blended = low + (high - low) * fraction
        result[q] = np.where(fraction == 0.0, low, blended)
        result.loc[n == 0, q] = math.nan
    return result.reset_index(drop=True)


def _values_at(
    connection: duckdb.DuckDBPyConnection,
    source: str,
    by: list[str],
    value: str,
    valued: str,
    counts: pd.DataFrame,
    wanted: list[tuple[Any, ...]],
) -> dict[tuple[Any, ...], float]:
    """{(*group, rank): value} of the 0-based ranks ``wanted`` among each group's values
    (those meeting ``valued``) in ascending order. Few groups: DuckDB's selection
    (:func:`_values_by_selection`); many: each group's values sorted in one list
    (``list_sort``, far cheaper than a window's sort), indexed at the wanted ranks."""
    if not wanted:
        return {}
    groups = len({tuple(entry[:-1]) for entry in wanted})
    if groups <= FEW_GROUPS and len(wanted) <= FEW_RANKS:
        return _values_by_selection(connection, source, by, value, valued, counts, wanted)
    keys = ", ".join(f'"{name}"' for name in by)
    ranks = pd.DataFrame(list(dict.fromkeys(wanted)), columns=[*by, "rank_"])
    for name in by:  # the join compares like with like
        ranks[name] = ranks[name].astype(counts[name].dtype)
    with registered(connection, ranks) as ranked:
        found = connection.sql(
            f"""
            WITH sorted AS (
                SELECT {keys}, list_sort(list({value})) AS values_
                FROM {source} WHERE {valued} GROUP BY {keys}
            ), wanted AS (
                SELECT {keys}, list(rank_ ORDER BY rank_) AS ranks_ FROM {ranked} GROUP BY {keys}
            )
            SELECT {keys}, ranks_, list_select(values_, list_transform(ranks_, lambda r: r + 1))
            FROM sorted JOIN wanted USING ({keys})
            """
        ).fetchall()
    return {
        (*record[:-2], rank): float(value)
        for record in found
        for rank, value in zip(record[-2], record[-1], strict=True)
    }


FEW_GROUPS = 32
FEW_RANKS = 256
"""Up to this many groups and ranks in all, order statistics come from quantile_disc, past
either from sorted lists: one quantile_disc evaluates every group at every group's
probabilities, each a selection of its own (a CDF's ~2,400 ranks over 10M values: 5x slower
than sorting the list once)."""


def _values_by_selection(
    connection: duckdb.DuckDBPyConnection,
    source: str,
    by: list[str],
    value: str,
    valued: str,
    counts: pd.DataFrame,
    wanted: list[tuple[Any, ...]],
) -> dict[tuple[Any, ...], float]:
    """:func:`_values_at` by DuckDB's ``quantile_disc`` (a selection, no full sort, no list):
    its value at probability q is the one at 0-based rank ceil(n q) - 1 (checked on many n
    and q); asking at q = (r + 0.5) / n puts n q half a rank from either boundary, so rank r
    comes back whatever the rounding of n q (floor(n q) would give r too)."""
    sizes = {tuple(row[:-1]): int(row[-1]) for row in counts.itertuples(index=False)}
    positions: dict[float, int] = {}
    needed = []
    for entry in dict.fromkeys(wanted):
        group, rank = tuple(entry[:-1]), int(entry[-1])
        q = (rank + 0.5) / sizes[group]
        needed.append((group, rank, positions.setdefault(q, len(positions))))
    keys = ", ".join(f'"{name}"' for name in by)
    probabilities = ", ".join(repr(q) for q in positions)
    found = connection.sql(
        f"SELECT {keys}, quantile_disc({value}, [{probabilities}]::DOUBLE[]) "
        f"FROM {source} WHERE {valued} GROUP BY {keys}"
    ).fetchall()
    values = {tuple(record[:-1]): record[-1] for record in found}
    return {(*group, rank): float(values[group][position]) for group, rank, position in needed}


def describe_pooled_and_trials(
    connection: duckdb.DuckDBPyConnection,
    rows: Rows,
    by: list[str],
    column: str,
    trial_column: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``describe_groups(..., trial_column)``, ``describe_groups(...)`` without it) from one
    pooled pass: the pooled table's quantile intervals widened by the per-trial quantiles
    exactly as describe_groups does (two figures a report needs of the same rows)."""
    pooled = describe_groups(connection, rows, by, column)
    per_trial = quantiles(connection, rows, [*by, trial_column], column, list(QUANTILES.values()))
    per_trial = per_trial.loc[per_trial["n"] > 0]
    widened = pooled.copy()
    trials_of = []
    for index, row in pooled.iterrows():
        if row["n"] == 0:
            trials_of.append(1)
            continue
        mask = np.ones(len(per_trial), dtype=bool)
        for name in by:
            mask &= (per_trial[name] == row[name]).to_numpy()
        trials = per_trial.loc[mask]
        trials_of.append(len(trials))
        if len(trials) < 2:
            continue
        for name, q in QUANTILES.items():
            lo, hi = trial_interval(
                row[name], row[f"{name}_lo"], row[f"{name}_hi"], trials[q].to_numpy()
            )
            widened.loc[index, f"{name}_lo"], widened.loc[index, f"{name}_hi"] = lo, hi
    widened.insert(len(by) + 1, "trials", np.array(trials_of, dtype="int64"))
    return widened, pooled


@contextlib.contextmanager
def materialized(
    connection: duckdb.DuckDBPyConnection, query: str
) -> Iterator[duckdb.DuckDBPyRelation]:
    """The rows of ``query`` computed once into a temporary table (DuckDB keeps it within its
    memory limit, spilling past it) for a pass that reads them several times; dropped after."""
    name = f"rows_{uuid.uuid4().hex}"
    connection.execute(f'CREATE TEMP TABLE "{name}" AS {query}')
    try:
        yield connection.table(name)
    finally:
        connection.execute(f'DROP TABLE IF EXISTS "{name}"')


# --- Helpers of the passes that run over the views (accounting, capacity, lag, recovery, cost).


@contextlib.contextmanager
def frames_connection(
    memory_limit: str | None = None, **frames: pd.DataFrame
) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`connect` with the views over in-memory frames (:func:`register_frames`): for
    callers that hold small tables in pandas (tests, ``asyncbench tune``'s trial subsets)."""
    with connect(memory_limit) as connection:
        register_frames(connection, **frames)
        yield connection


def ordered_column(
    connection: duckdb.DuckDBPyConnection, query: str, parameters: Sequence[object] = ()
) -> np.ndarray:
    """The single float column of ``query`` as a numpy array, in the order the query gives
    (say ``ORDER BY read_order``, :func:`in_read_order`, to sum or take means as pandas did:
    a float sum depends on the order of its terms, and numpy's pairwise sum is not DuckDB's);
    NULL is NaN."""
    (values,) = connection.execute(query, parameters).fetchnumpy().values()
    return np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan)


def sql_list(values: Iterable[object]) -> str:
    """A SQL list literal of ints or strings (``IN`` lists built from small pandas tables)."""
    items = []
    for value in values:
        if isinstance(value, str):
            items.append("'" + value.replace("'", "''") + "'")
        else:
            items.append(str(int(value)))  # type: ignore[call-overload]
    return "(" + ", ".join(items) + ")" if items else "(NULL)"


def in_read_order(view: str) -> str:
    """SQL of ``view``'s rows with ``read_order``, a BIGINT that sorts them as pandas read
    them (parts in name order, rows in file order): ``arg_max_null(x, read_order)`` is the
    last row's x, cheaper than ordering by (part_file, part_row) (up to 2^23 parts of up to
    2^40 rows)."""
    return f"""(
        SELECT rows_.*, files_.index_ * 1099511627776 + rows_.part_row AS read_order
        FROM "{view}" AS rows_ JOIN (
            SELECT part_file, row_number() OVER (ORDER BY part_file) - 1 AS index_
            FROM (SELECT DISTINCT part_file FROM "{view}")
        ) AS files_ USING (part_file)
    )"""


def describe_fetched(
    connection: duckdb.DuckDBPyConnection, query: str, by: list[str], column: str
) -> pd.DataFrame:
    """:func:`analysis.stats.describe_groups` of ``column`` per group of ``by`` over the rows
    of ``query``, with one group's values in memory at a time. Exact whatever the order the
    engine returns them in: ``stats.describe`` sorts them before any float arithmetic."""
    keys = ", ".join(f'"{name}"' for name in by)
    present = " AND ".join(f'"{name}" IS NOT NULL' for name in by)
    groups = connection.execute(
        f"SELECT DISTINCT {keys} FROM ({query}) WHERE {present} ORDER BY {keys}"
    ).fetchall()
    match = " AND ".join(f'"{name}" = ?' for name in by)
    rows = []
    for group in groups:
        values = ordered_column(
            connection, f'SELECT "{column}" FROM ({query}) WHERE {match}', list(group)
        )
        rows.append({**dict(zip(by, group, strict=True)), **describe(values)})
    # The frame analysis.stats.describe_groups builds from the same rows.
    columns = [*by, "n", "mean", "mean_lo", "mean_hi"]
    for name in (*QUANTILES, "max"):
        columns += [name, f"{name}_lo", f"{name}_hi"]
    result = pd.DataFrame(rows, columns=columns)
    result["n"] = result["n"].astype("int64")
    return result
