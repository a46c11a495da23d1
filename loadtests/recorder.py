"""The lossless per-request recorder: one row per request attempt, in Parquet parts.

A :class:`Recorder` buffers rows (dicts of :data:`reports.schema.CLIENT` columns) and hands
them, every :data:`FLUSH_INTERVAL_S` or :data:`FLUSH_ROWS`, to a sink: :class:`PartWriter`
writes them to the run folder (the local runner and the distributed master), a forwarding sink
sends them to the master (distributed workers; see ``loadtests.users``). Part names are
``f"{trial:04d}-{worker}-{chunk:05d}"`` so parts of different workers never collide. The
recorder counts what it wrote per worker, which the driver checks against Locust's count.
No Locust here: flushing is driven by whoever owns the recorder. Workers send their rows to the
master as columns (:func:`rows_to_columns`), which the master writes as they come
(:meth:`PartWriter.write_columns`), never turning them back into rows.

What the recorder costs (``scripts/bench_loadgen.py``, py-spy on the load process): about 2 us
per row (buffer, Arrow conversion, Parquet row group) against about 200 us per request for
Locust, gevent and the socket. The row dicts hold only strings, numbers and None, which the
cyclic garbage collector does not track, so thousands of buffered rows cost it nothing.

Parts at scale: each flush is one row group appended to the worker's open part; a part is
closed (and only then takes its real name) after :data:`PART_ROWS` rows or
:data:`PART_SECONDS`, and by :meth:`Recorder.close` at the end of the trial. At 10k requests/s
for an hour that is 360 parts of 100,000 rows per worker, not 7,200 of 5,000; memory holds one
flush, never a part. A part is readable only once closed, so a load generator that is killed
outright loses at most its last :data:`PART_SECONDS` of rows (a stop or Ctrl-C closes them).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.schema import CLIENT, write_table

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_ROWS",
    "PART_ROWS",
    "PART_SECONDS",
    "PartWriter",
    "Recorder",
    "columns_to_rows",
    "rows_to_columns",
]

FLUSH_INTERVAL_S = 2.0
FLUSH_ROWS = 5000
PART_ROWS = 1_000_000
PART_SECONDS = 10.0

Row = dict[str, Any]
_CLIENT_COLUMNS = frozenset(CLIENT.schema.names)
Sink = Callable[[str, list[Row]], None]


class PartWriter:
    """Sink that appends each batch of one worker to that worker's open CLIENT part of the run
    folder, rolling to a new part every :data:`PART_ROWS` rows or :data:`PART_SECONDS`."""

    def __init__(
        self, run_dir: Path, trial: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.run_dir = Path(run_dir)
        self.trial = trial
        self._clock = clock
        self._chunks: dict[str, int] = defaultdict(int)
        self._open: dict[str, _OpenPart] = {}
        self.written: dict[str, int] = defaultdict(int)

    def __call__(self, worker: str, rows: list[Row]) -> None:
        if not rows:
            return
        unknown = rows[0].keys() - _CLIENT_COLUMNS
        missing = [name for name in CLIENT.required if name not in rows[0]]
        if unknown or missing:  # rows are built in one place; the first one stands for all
            part = self._next_part(worker)
            write_table(self.run_dir, CLIENT, pd.DataFrame.from_records(rows), part=part)
            self.written[worker] += len(rows)
        else:
            # Straight to Arrow with the CLIENT schema: several times cheaper than through
            # pandas, which keeps the recorder's cost per request small (bench_loadgen.py).
            self._append(worker, pa.Table.from_pylist(rows, schema=CLIENT.schema))

    def write_columns(self, worker: str, columns: Mapping[str, list[Any]]) -> None:
        """Append a batch given as columns (:func:`rows_to_columns`, a worker's wire format)."""
        if columns.keys() != _CLIENT_COLUMNS:  # a worker of another schema: validate as rows
            self(worker, columns_to_rows(columns))
            return
        table = pa.Table.from_pydict(dict(columns), schema=CLIENT.schema)
        if table.num_rows:
            self._append(worker, table)

    def _append(self, worker: str, table: pa.Table) -> None:
        """One row group on the worker's open part; the part closes when big or old enough."""
        current = self._open.get(worker)
        if current is None:
            current = self._open[worker] = self._start(worker)
        current.writer.write_table(table)
        current.rows += table.num_rows
        if current.rows >= PART_ROWS or self._clock() - current.opened >= PART_SECONDS:
            self._finish(worker)
        self.written[worker] += table.num_rows

    def close(self) -> None:
        """Close every open part under its real name (the end of the trial)."""
        for worker in list(self._open):
            self._finish(worker)

    def _next_part(self, worker: str) -> str:
        chunk = self._chunks[worker]
        self._chunks[worker] += 1
        return f"{self.trial:04d}-{_safe(worker)}-{chunk:05d}"

    def _start(self, worker: str) -> _OpenPart:
        path = self.run_dir / CLIENT.location / f"{self._next_part(worker)}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".parquet.tmp")
        writer = pq.ParquetWriter(temporary, CLIENT.schema)
        return _OpenPart(path, temporary, writer, self._clock())

    def _finish(self, worker: str) -> None:
        current = self._open.pop(worker)
        current.writer.close()
        os.replace(current.temporary, current.path)  # never half a parquet file under its name


@dataclass
class _OpenPart:
    path: Path
    temporary: Path
    writer: pq.ParquetWriter
    opened: float
    rows: int = 0


class Recorder:
    """Buffers rows per worker and flushes them to a sink in batches."""

    def __init__(self, sink: Sink, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._clock = clock
        self._buffers: dict[str, list[Row]] = defaultdict(list)
        self._last_flush = clock()
        self.recorded: dict[str, int] = defaultdict(int)

    def add(self, worker: str, row: Row) -> None:
        self._buffers[worker].append(row)
        self.recorded[worker] += 1

    def extend(self, worker: str, rows: Iterable[Row]) -> None:
        for row in rows:
            self.add(worker, row)

    @property
    def buffered(self) -> int:
        return sum(len(rows) for rows in self._buffers.values())

    def due(self) -> bool:
        """True when a flush is due by time or by size."""
        return self.buffered >= FLUSH_ROWS or self._clock() - self._last_flush >= FLUSH_INTERVAL_S

    def flush(self) -> None:
        """Hand every buffered row to the sink (swap first: rows added meanwhile are kept)."""
        self._last_flush = self._clock()
        buffers, self._buffers = self._buffers, defaultdict(list)
        for worker, rows in buffers.items():
            self._sink(worker, rows)

    def close(self) -> None:
        """Flush, then close the sink's open parts (a sink that keeps none has no ``close``)."""
        self.flush()
        close = getattr(self._sink, "close", None)
        if close is not None:
            close()


def rows_to_columns(rows: list[Row]) -> dict[str, list[Any]]:
    """Rows as column lists (every CLIENT column): a compact wire format for the master."""
    return {name: [row.get(name) for row in rows] for name in CLIENT.columns}


def columns_to_rows(columns: Mapping[str, list[Any]]) -> list[Row]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _safe(worker: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in worker)
