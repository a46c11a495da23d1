"""The lossless per-request recorder: one row per request attempt, in Parquet parts.

A :class:`Recorder` buffers rows (dicts of :data:`reports.schema.CLIENT` columns) and hands
them, every :data:`FLUSH_INTERVAL_S` or :data:`FLUSH_ROWS`, to a sink: :class:`PartWriter`
writes them to the run folder (the local runner and the distributed master), a forwarding sink
sends them to the master (distributed workers; see ``loadtests.users``). Part names are
``f"{trial:04d}-{worker}-{chunk:05d}"`` so parts of different workers never collide. The
recorder counts what it wrote per worker, which the driver checks against Locust's count.
No Locust here: flushing is driven by whoever owns the recorder.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reports.schema import CLIENT, write_table

__all__ = [
    "FLUSH_INTERVAL_S",
    "FLUSH_ROWS",
    "PartWriter",
    "Recorder",
    "columns_to_rows",
    "rows_to_columns",
]

FLUSH_INTERVAL_S = 2.0
FLUSH_ROWS = 5000

Row = dict[str, Any]
_CLIENT_COLUMNS = frozenset(CLIENT.schema.names)
Sink = Callable[[str, list[Row]], None]


class PartWriter:
    """Sink that writes each batch of one worker as a new CLIENT part of the run folder."""

    def __init__(self, run_dir: Path, trial: int) -> None:
        self.run_dir = Path(run_dir)
        self.trial = trial
        self._chunks: dict[str, int] = defaultdict(int)
        self.written: dict[str, int] = defaultdict(int)

    def __call__(self, worker: str, rows: list[Row]) -> None:
        if not rows:
            return
        chunk = self._chunks[worker]
        self._chunks[worker] += 1
        part = f"{self.trial:04d}-{_safe(worker)}-{chunk:05d}"
        unknown = rows[0].keys() - _CLIENT_COLUMNS
        missing = [name for name in CLIENT.required if name not in rows[0]]
        if unknown or missing:  # rows are built in one place; the first one stands for all
            write_table(self.run_dir, CLIENT, pd.DataFrame.from_records(rows), part=part)
        else:
            # Straight to Arrow with the CLIENT schema: several times cheaper than through
            # pandas, which keeps the recorder's cost per request small (bench_loadgen.py).
            path = self.run_dir / CLIENT.location / f"{part}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".parquet.tmp")
            pq.write_table(pa.Table.from_pylist(rows, schema=CLIENT.schema), temporary)
            os.replace(temporary, path)  # never half a parquet file under its real name
        self.written[worker] += len(rows)


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


def rows_to_columns(rows: list[Row]) -> dict[str, list[Any]]:
    """Rows as column lists: a compact wire format for the master."""
    return {name: [row.get(name) for row in rows] for name in CLIENT.columns}


def columns_to_rows(columns: Mapping[str, list[Any]]) -> list[Row]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _safe(worker: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in worker)
