"""The run folder's single definition: its files, their columns (with units) and its version.

``loadtests`` writes run folders through this module and ``analysis`` reads them through it;
nothing else knows file names or column types. Layout of ``reports/<run_id>/``::

    manifest.json                 provenance, scenario, config, trials' bookkeeping, `partial`
    data/client/*.parquet         one row per request attempt, written in chunks (CLIENT)
    data/server/*.parquet         both tables' items of the run, in parts per trial (SERVER)
    data/parked/*.parquet         failure-destination records, one row per parked stream record
    data/metrics/*.parquet        the stage's own metrics (local log or CloudWatch), long format
    data/trials.parquet           one row per trial (TRIALS)
    data/redriven/*.parquet       requests `asyncbench redrive` processed again (REDRIVEN)
    index.html, report.md, summary.json, figures/   once reported

Times are epoch milliseconds (``*_at_ms``) on the clock named in the column's doc; durations are
milliseconds (``*_ms``). A folder whose ``schema_version`` is newer than :data:`SCHEMA_VERSION`
is refused with a readable error; older ones are upgraded one step at a time by
:data:`MIGRATIONS` when read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from asyncbench.errors import RunFolderError

__all__ = [
    "CLIENT",
    "METRICS",
    "MIGRATIONS",
    "OUTCOMES",
    "PARKED",
    "PartFile",
    "REDRIVEN",
    "SCHEMA_VERSION",
    "SERVER",
    "STATUSES",
    "TABLES",
    "TRIALS",
    "TableSpec",
    "check_parts",
    "conform",
    "conform_columns",
    "empty_frame",
    "part_paths",
    "read_manifest",
    "read_table",
    "write_columns",
    "write_manifest",
    "write_table",
]

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"

# What a client saw for one request attempt.
OUTCOMES = (
    "accepted",  # storage-first 202: stored, processing later
    "succeeded",  # direct 200: processed and stored
    "rejected",  # 4xx other than 429: permanent failure or invalid body
    "throttled",  # 429
    "server_error",  # 5xx (502 for a direct transient failure)
    "timeout",  # no response within the client timeout
    "connection_error",  # refused / reset: no HTTP response at all
)
# An item's status as the processor left it.
STATUSES = ("PENDING", "SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class TableSpec:
    """One tabular file kind of the run folder: where it lives and its columns."""

    name: str
    location: str
    """Path relative to the run folder: a directory of parquet parts, or one parquet file."""
    schema: pa.Schema
    required: tuple[str, ...]
    """Columns a writer must supply; the rest may be missing and are filled with nulls."""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def is_directory(self) -> bool:
        return not self.location.endswith(".parquet")


def _field(name: str, kind: pa.DataType, doc: str) -> pa.Field:
    return pa.field(name, kind, metadata={"doc": doc})


CLIENT = TableSpec(
    name="client",
    location="data/client",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id, also sent as the X-Run-Id header"),
            _field("trial", pa.int32(), "trial number, 1-based, in run order"),
            _field("variant", pa.string(), "'direct' or 'storage_first'"),
            _field("scenario", pa.string(), "scenario name"),
            _field("worker", pa.string(), "load-generator process that sent it"),
            _field("attempt", pa.int16(), "1 for the first try; >1 for client retries"),
            _field("intended_at_ms", pa.float64(), "client wall clock: when the pacer meant it"),
            _field("sent_at_ms", pa.float64(), "client wall clock: when it was actually sent"),
            _field("latency_ms", pa.float64(), "client monotonic clock: send to response"),
            _field(
                "latency_from_intended_ms",
                pa.float64(),
                "client clock: intended send to response (coordinated omission corrected)",
            ),
            _field("status_code", pa.int16(), "HTTP status; 0 when no response arrived"),
            _field("outcome", pa.string(), f"one of {', '.join(OUTCOMES)}"),
            _field("request_id", pa.string(), "API request id from the response body, if any"),
            _field("warmup", pa.bool_(), "sent during the scenario's warm-up"),
            _field("target_rate_per_s", pa.float64(), "offered arrival rate at intended time"),
            _field("stage", pa.int16(), "index of the load-shape stage at intended time"),
            _field("time_to_result_ms", pa.float64(), "polling clients: send to terminal status"),
            _field("result_status", pa.string(), "polling clients: terminal status seen"),
            _field("error", pa.string(), "client-side error text (timeouts, resets)"),
        ]
    ),
    required=(
        "run_id",
        "trial",
        "variant",
        "scenario",
        "worker",
        "intended_at_ms",
        "sent_at_ms",
        "latency_ms",
        "latency_from_intended_ms",
        "status_code",
        "outcome",
        "request_id",
    ),  # fmt: skip
)

SERVER = TableSpec(
    name="server",
    location="data/server",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id the item was stored with"),
            _field("trial", pa.int32(), "trial the item belongs to"),
            _field("variant", pa.string(), "'direct' or 'storage_first'"),
            _field("request_id", pa.string(), "item id = API Gateway request id"),
            _field("status", pa.string(), f"one of {', '.join(STATUSES)}"),
            _field("attempts", pa.int32(), "processing attempts recorded on the item"),
            _field("duplicates", pa.int32(), "deliveries after the item was already terminal"),
            _field("accepted_at_ms", pa.float64(), "server clock: API Gateway's request time"),
            _field(
                "started_at_ms", pa.float64(), "server clock: processing of the last attempt began"
            ),
            _field("processed_at_ms", pa.float64(), "server clock: item became terminal"),
            _field("error", pa.string(), "error recorded on the item (FAILED)"),
            _field("cold_start", pa.bool_(), "processed by a freshly started environment"),
            _field("ttl", pa.int64(), "epoch seconds the item expires at, if set"),
            _field("request_bytes", pa.int64(), "size of the stored request body in bytes"),
            _field("collected_at_ms", pa.float64(), "collector clock: when the item was read"),
        ]
    ),
    required=("run_id", "trial", "variant", "request_id", "status", "accepted_at_ms"),
)

PARKED = TableSpec(
    name="parked",
    location="data/parked",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id"),
            _field("trial", pa.int32(), "trial"),
            _field("variant", pa.string(), "always 'storage_first'"),
            _field("request_id", pa.string(), "item id resolved from the stream, if resolvable"),
            _field("shard_id", pa.string(), "DDBStreamBatchInfo.shardId"),
            _field("start_sequence_number", pa.string(), "DDBStreamBatchInfo.startSequenceNumber"),
            _field("end_sequence_number", pa.string(), "DDBStreamBatchInfo.endSequenceNumber"),
            _field("batch_size", pa.int32(), "DDBStreamBatchInfo.batchSize"),
            _field(
                "condition", pa.string(), "requestContext.condition, e.g. RetryAttemptsExhausted"
            ),
            _field("approximate_invoke_count", pa.int32(), "requestContext.approximateInvokeCount"),
            _field("timestamp_ms", pa.float64(), "when the mapping sent the record"),
            _field("raw", pa.string(), "the destination record as JSON"),
        ]
    ),
    required=("run_id", "trial", "variant", "raw"),
)

METRICS = TableSpec(
    name="metrics",
    location="data/metrics",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id"),
            _field("trial", pa.int32(), "trial"),
            _field("variant", pa.string(), "variant the metric is about"),
            _field(
                "source",
                pa.string(),
                "'local' (stage metrics log), 'cloudwatch_logs' (per invocation) or 'cloudwatch'",
            ),
            _field("metric", pa.string(), "e.g. Invocations, Duration, Throttles, IteratorAge"),
            _field("timestamp_ms", pa.float64(), "server clock"),
            _field("value", pa.float64(), "value in `unit`"),
            _field("unit", pa.string(), "e.g. Milliseconds, Count"),
            _field("dimensions", pa.string(), "JSON object of dimensions / extra fields"),
        ]
    ),
    required=("run_id", "trial", "variant", "source", "metric", "timestamp_ms", "value"),
)

TRIALS = TableSpec(
    name="trials",
    location="data/trials.parquet",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id"),
            _field("trial", pa.int32(), "trial number, 1-based, in run order"),
            _field("repetition", pa.int32(), "repetition the trial belongs to, 1-based"),
            _field("variant", pa.string(), "variant driven"),
            _field("scenario", pa.string(), "scenario name"),
            _field("started_at_ms", pa.float64(), "client wall clock"),
            _field("ended_at_ms", pa.float64(), "client wall clock: load stopped"),
            _field("warmup_until_ms", pa.float64(), "client wall clock: end of warm-up"),
            _field("outage_start_ms", pa.float64(), "epoch ms: injected outage begins (if any)"),
            _field("outage_end_ms", pa.float64(), "epoch ms: injected outage ends (if any)"),
            _field("requests_counted", pa.int64(), "requests Locust counted, all workers"),
            _field("rows_written", pa.int64(), "client rows the recorder wrote"),
            _field("late_sends", pa.int64(), "requests sent later than their intended time"),
            _field(
                "dropped_sends",
                pa.int64(),
                "slots of the schedule never sent (drain deadline, stop, overloaded generator, "
                "lost worker); null when the generator did not count them",
            ),
            _field("workers_lost", pa.int32(), "load-generator workers lost during the trial"),
            _field("unfinished", pa.int64(), "accepted items not terminal at collection deadline"),
            _field("collected_at_ms", pa.float64(), "when collection finished"),
            _field("complete", pa.bool_(), "false when the trial was interrupted"),
        ]
    ),
    required=("run_id", "trial", "repetition", "variant", "scenario", "started_at_ms"),
)

REDRIVEN = TableSpec(
    name="redriven",
    location="data/redriven",
    schema=pa.schema(
        [
            _field("run_id", pa.string(), "run id"),
            _field("trial", pa.int32(), "trial of the request"),
            _field("variant", pa.string(), "always 'storage_first'"),
            _field("request_id", pa.string(), "item id that was processed again"),
            _field("source", pa.string(), "'parked' (failure destination) or 'pending' (cut-off)"),
            _field("redriven_at_ms", pa.float64(), "re-driver clock: when it was re-driven"),
            _field(
                "status_before", pa.string(), f"item status before: one of {', '.join(STATUSES)}"
            ),
            _field("status_after", pa.string(), f"item status after: one of {', '.join(STATUSES)}"),
            _field("error", pa.string(), "error of the re-drive itself, if it failed"),
        ]
    ),
    required=("run_id", "trial", "variant", "request_id", "source", "redriven_at_ms"),
)

TABLES: Mapping[str, TableSpec] = {
    spec.name: spec for spec in (CLIENT, SERVER, PARKED, METRICS, TRIALS, REDRIVEN)
}


def empty_frame(spec: TableSpec) -> pd.DataFrame:
    """An empty DataFrame with the spec's columns and dtypes."""
    return spec.schema.empty_table().to_pandas()


def conform(frame: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """Frame -> Arrow table of exactly the spec's columns; missing required columns raise."""
    missing = [column for column in spec.required if column not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name} rows lack required column(s): {', '.join(missing)}")
    unknown = [column for column in frame.columns if column not in spec.schema.names]
    if unknown:
        raise ValueError(f"{spec.name} rows have unknown column(s): {', '.join(unknown)}")
    arrays = []
    for schema_field in spec.schema:
        if schema_field.name in frame.columns:
            values = frame[schema_field.name]
            array = pa.array(values.astype(object).where(values.notna(), None), from_pandas=True)
            arrays.append(array.cast(schema_field.type))
        else:
            arrays.append(pa.nulls(len(frame), schema_field.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def write_table(
    run_dir: Path, spec: TableSpec, frame: pd.DataFrame, *, part: str | None = None
) -> Path:
    """Write rows of one kind. Directory kinds need a ``part`` name (one file per chunk/trial)."""
    return _write(run_dir, spec, conform(frame, spec), part)


def conform_columns(columns: Mapping[str, Any], length: int, spec: TableSpec) -> pa.Table:
    """Columns (numpy or Arrow arrays of ``length`` values, or one scalar for every row) -> an
    Arrow table of exactly the spec's columns, without going through Python objects: the fast
    path for writers of millions of rows (the synthetic generator). NaN in a float column
    becomes null, as :func:`conform` makes it; missing required columns raise."""
    missing = [column for column in spec.required if column not in columns]
    if missing:
        raise ValueError(f"{spec.name} rows lack required column(s): {', '.join(missing)}")
    unknown = [column for column in columns if column not in spec.schema.names]
    if unknown:
        raise ValueError(f"{spec.name} rows have unknown column(s): {', '.join(unknown)}")
    arrays = []
    for schema_field in spec.schema:
        values = columns.get(schema_field.name)
        if values is None:
            array = pa.nulls(length, schema_field.type)
        elif isinstance(values, pa.Array | pa.ChunkedArray | np.ndarray):
            array = pa.array(values, from_pandas=True) if isinstance(values, np.ndarray) else values
        else:
            array = pa.repeat(pa.scalar(values), length)
        if len(array) != length:
            raise ValueError(
                f"{spec.name} column {schema_field.name} has {len(array)} values, not {length}"
            )
        arrays.append(array.cast(schema_field.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def write_columns(
    run_dir: Path, spec: TableSpec, columns: Mapping[str, Any], length: int, *, part: str
) -> Path:
    """:func:`write_table` for columns given as arrays (see :func:`conform_columns`)."""
    return _write(run_dir, spec, conform_columns(columns, length, spec), part)


class PartFile:
    """One part of a directory kind written in row groups (the writer holds one group, never
    the part): :meth:`append` adds rows as :func:`conform_columns` takes them, :meth:`close`
    gives the file its real name (until then it is ``NAME.parquet.tmp``, which no reader lists).
    """

    def __init__(self, run_dir: Path, spec: TableSpec, part: str) -> None:
        if not spec.is_directory:
            raise ValueError(f"{spec.name} is one file, not written in parts")
        self.spec = spec
        self.path = Path(run_dir) / spec.location / f"{part}.parquet"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = self.path.with_suffix(".parquet.tmp")
        self._writer = pq.ParquetWriter(self._temporary, spec.schema)
        self.rows = 0

    def append(self, columns: Mapping[str, Any], length: int) -> None:
        self._writer.write_table(conform_columns(columns, length, self.spec))
        self.rows += length

    def close(self) -> Path:
        self._writer.close()
        os.replace(self._temporary, self.path)
        return self.path


def _write(run_dir: Path, spec: TableSpec, table: pa.Table, part: str | None) -> Path:
    if spec.is_directory:
        if not part:
            raise ValueError(f"{spec.name} is written in parts: give a part name")
        path = run_dir / spec.location / f"{part}.parquet"
    else:
        path = run_dir / spec.location
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".parquet.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)  # a crash never leaves half a parquet file under its real name
    return path


def part_paths(run_dir: Path, spec: TableSpec) -> list[Path]:
    """The parquet files holding one kind of rows, in name order (none: an empty list)."""
    location = Path(run_dir) / spec.location
    if spec.is_directory:
        return sorted(location.glob("*.parquet")) if location.is_dir() else []
    return [location] if location.is_file() else []


def check_parts(run_dir: Path, spec: TableSpec) -> list[Path]:
    """:func:`part_paths`, each checked from its footer alone (readable, has the required
    columns) so a reader that scans them later (the analysis engine) fails with a clear line."""
    paths = part_paths(run_dir, spec)
    for path in paths:
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowInvalid) as error:
            raise RunFolderError(f"cannot read {path}: {error}") from None
        missing = [name for name in spec.required if name not in names]
        if missing:
            raise RunFolderError(
                f"{path} lacks column(s) {', '.join(missing)}; the file is damaged"
            )
    return paths


def read_table(run_dir: Path, spec: TableSpec) -> pd.DataFrame:
    """All rows of one kind (all parts concatenated); empty with the right columns if none."""
    paths = part_paths(run_dir, spec)
    if not paths:
        return empty_frame(spec)
    tables = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as error:
            raise RunFolderError(f"cannot read {path}: {error}") from None
        tables.append(_align(table, spec, path))
    return pa.concat_tables(tables).to_pandas()


def _align(table: pa.Table, spec: TableSpec, path: Path) -> pa.Table:
    missing = [name for name in spec.required if name not in table.column_names]
    if missing:
        raise RunFolderError(f"{path} lacks column(s) {', '.join(missing)}; the file is damaged")
    arrays = [
        table[name].cast(schema_field.type)
        if name in table.column_names
        else pa.nulls(len(table), schema_field.type)
        for name, schema_field in zip(spec.schema.names, spec.schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=spec.schema)


# Upgrades of manifest.json, one version step each: MIGRATIONS[n] turns version n into n + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest, upgraded to the current version; a newer version is refused."""
    path = Path(run_dir) / MANIFEST_FILE
    if not Path(run_dir).is_dir():
        raise RunFolderError(f"no run folder at {run_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{run_dir} has no {MANIFEST_FILE}; it is not a run folder") from None
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path} is not valid JSON: {error}") from None
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise RunFolderError(f"{path} has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise RunFolderError(
            f"{run_dir} was written with run-folder schema version {version}, newer than this "
            f"asyncbench reads ({SCHEMA_VERSION}); upgrade asyncbench to read it"
        )
    while version < SCHEMA_VERSION:
        manifest = MIGRATIONS[version](manifest)
        version += 1
        manifest["schema_version"] = version
    return dict(manifest)


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Write manifest.json atomically, stamped with the current schema version."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {**manifest, "schema_version": SCHEMA_VERSION}
    with tempfile.NamedTemporaryFile(
        "w", dir=run_dir, prefix=".manifest", suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    path = run_dir / MANIFEST_FILE
    os.replace(handle.name, path)
    return path
