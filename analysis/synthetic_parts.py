"""Synthetic run folders of any size, written part by part with bounded memory.

:func:`analysis.synthetic.build_run` builds a whole run in memory, which is fine for tests and
impossible at 20 million requests. :func:`write_run_in_parts` writes the same kind of run (the
same :class:`~analysis.synthetic.SyntheticSpec`, the same shape: ids, schedule, outage, FIFO
drain, lost / parked / pending / re-driven / retried requests, two metric rows per stored item)
straight to a run folder in parts of at most ``part_rows`` requests, each built and written
:data:`CHUNK_ROWS` requests (one row group) at a time, so memory holds one chunk whatever the
size of the run. Only the random draws differ from ``build_run``'s: each
trial draws its latencies and its poison requests from its own seeded streams, so the rows do
not depend on the part size, and every column that is not random equals ``build_run``'s.

Parts: ``data/client/client-TTTT-PPPP.parquet`` (one row per request of the part, plus the
failed first attempt of each retried one), ``data/server/server-TTTT-PPPP.parquet`` (its stored
items), ``data/metrics/metrics-TTTT-PPPP.parquet`` (two rows per stored item), per trial
``parked-TTTT`` and ``redrive-TTTT`` when it has any, then ``trials.parquet`` and the manifest,
last, so a folder with a manifest is complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.synthetic import (
    EPOCH_MS,
    VARIANTS,
    SyntheticSpec,
    handle,
    synthetic_manifest,
    trial_row,
)
from reports import schema

__all__ = ["CHUNK_ROWS", "PART_ROWS", "REQUEST_ID_STYLES", "PartsWritten", "write_run_in_parts"]

PART_ROWS = 1_000_000
# Requests generated at once: one row group of a part (memory holds one, not the whole part).
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class PartsWritten:
    """What :func:`write_run_in_parts` wrote."""

    run_dir: Path
    client_rows: int
    server_rows: int
    metric_rows: int
    parts: int


@dataclass
class _Carry:
    """State one part hands to the next part of the same trial."""

    sent_max: float = -np.inf  # running max of intended - i * send interval (generator limit)
    drain_max: float = -np.inf  # running max of release - i * drain interval (FIFO processor)
    stored: int = 0  # items stored by earlier parts (retries are picked by stored rank)
    late_sends: int = 0
    client_rows: int = 0


def _fifo_part(
    release_ms: np.ndarray, service_ms: float, first: int, carry: float
) -> tuple[np.ndarray, float]:
    """``synthetic._fifo`` over a slice starting at index ``first`` of the whole trial, given
    the running maximum ``carry`` of the earlier slices: the same floats as one call on the
    whole array (a maximum is exact and the index products are the same). Returns the
    completion times and the carry for the next slice."""
    index = np.arange(first, first + len(release_ms)) * service_ms
    if not len(index):
        return index, carry
    running = np.maximum(np.maximum.accumulate(release_ms - index), carry)
    return index + running, float(running[-1])


def _schedule(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per stage: first request index, start offset (s), rate, request count."""
    firsts, starts, rates, counts = [], [], [], []
    start, first = 0.0, 0
    for duration, rate in spec.stages:
        count = round(duration * rate)
        firsts.append(first)
        starts.append(start)
        rates.append(rate)
        counts.append(count)
        first += count
        start += duration
    return np.array(firsts), np.array(starts), np.array(rates, dtype=float), np.array(counts)


def _chunks(count: int, part_rows: int, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    """(part number, first, end) of the chunks of ``count`` requests: at most ``chunk_rows``
    each, never across a boundary of parts of ``part_rows``."""
    low = 0
    while low < count:
        part = low // part_rows + 1
        high = min(low + chunk_rows, part * part_rows, count)
        yield part, low, high
        low = high


def _two_runs(first: str, second: str, count: int) -> pa.Array:
    """``count`` times ``first`` then ``count`` times ``second``, built in Arrow (a numpy
    string array of millions of rows takes 4 bytes per character)."""
    return pa.concat_arrays([pa.repeat(first, count), pa.repeat(second, count)])


def _ids(variant: str, trial: int, index: np.ndarray) -> pa.Array:
    numbers = pc.cast(pa.array(index), pa.string())
    return pc.binary_join_element_wise(f"{variant[0]}{trial}-", numbers, "")


REQUEST_ID_STYLES = ("short", "uuid")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where a UUID's 32 hex digits go among its 36 characters (8-4-4-4-12, dashes between).
_UUID_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _uuid_ids(rng: np.random.Generator, count: int) -> pa.Array:
    """``count`` random ids shaped like API Gateway's request ids (36-character UUIDs, e.g.
    ``c6af9ac6-7b61-11e6-9a41-93e8deadbeef``): a real run's ids cost 36 bytes each in every
    hash table and parquet page that holds them, not the 4-10 of the short ids."""
    characters = np.full((count, 36), ord("-"), dtype=np.uint8)
    characters[:, _UUID_DIGITS] = _HEX[rng.integers(0, 16, size=(count, 32), dtype=np.uint8)]
    return pa.array(characters.view("S36").ravel(), type=pa.binary(36)).cast(pa.string())


def write_run_in_parts(
    run_dir: Path,
    spec: SyntheticSpec,
    run_id: str = "synthetic",
    *,
    part_rows: int = PART_ROWS,
    on_part: Callable[[str], None] | None = None,
    request_ids: str = "short",
) -> PartsWritten:
    """Write a run of ``spec`` to ``run_dir`` in parts of at most ``part_rows`` requests (see
    the module doc); ``on_part`` is called with each part's name once it is written.
    ``request_ids``: "short" (build_run's ``d1-0``, ``s2-17``...) or "uuid" (random ids the
    length of API Gateway's, drawn per trial and chunk: what a benchmark should read)."""
    if part_rows < 1:
        raise ValueError("part_rows must be at least 1")
    if request_ids not in REQUEST_ID_STYLES:
        raise ValueError(f"request_ids must be one of {REQUEST_ID_STYLES}, not {request_ids!r}")
    run_dir = Path(run_dir)
    firsts, starts, rates, counts = _schedule(spec)
    count = int(counts.sum())
    trial_length_s = float(sum(duration for duration, _ in spec.stages))
    totals = {"client": 0, "server": 0, "metrics": 0, "parts": 0}

    def written(name: str, rows: int, kind: str) -> None:
        totals[kind] += rows
        totals["parts"] += 1
        if on_part is not None:
            on_part(name)

    trials: list[dict[str, Any]] = []
    trial = 0
    for repetition in range(1, spec.repetitions + 1):
        for variant in VARIANTS:
            trial += 1
            start_ms = EPOCH_MS + (trial - 1) * (trial_length_s + spec.trial_gap_s) * 1000
            outage_ms = None
            if spec.outage is not None:
                outage_ms = (
                    start_ms + spec.outage[0] * 1000,
                    start_ms + (spec.outage[0] + spec.outage[1]) * 1000,
                )
            drift = spec.drift.get(variant, ())
            factor = drift[(repetition - 1) % len(drift)] if drift else 1.0
            latency_rng = np.random.default_rng([spec.seed, trial, 0])
            poison_rng = np.random.default_rng([spec.seed, trial, 1])
            carry = _Carry()
            parked_ids: list[pa.Array] = []
            parked_at: list[np.ndarray] = []
            redriven_ids: list[pa.Array] = []
            redriven_at: list[np.ndarray] = []
            files: dict[str, schema.PartFile] = {}
            for part, low, high in _chunks(count, part_rows, min(part_rows, CHUNK_ROWS)):
                if low == (part - 1) * part_rows:  # a new part begins
                    for kind, file in files.items():
                        written(file.close().stem, file.rows, kind)
                    tag = f"{trial:04d}-{part:04d}"
                    files = {
                        "client": schema.PartFile(run_dir, schema.CLIENT, f"client-{tag}"),
                        "server": schema.PartFile(run_dir, schema.SERVER, f"server-{tag}"),
                        "metrics": schema.PartFile(run_dir, schema.METRICS, f"metrics-{tag}"),
                    }
                index = np.arange(low, high)
                stage_index = np.searchsorted(firsts, index, side="right") - 1
                offsets_s = starts[stage_index] + (index - firsts[stage_index]) / rates[stage_index]
                intended = start_ms + offsets_s * 1000
                latency = factor * (
                    spec.latency_offset_ms[variant]
                    + latency_rng.exponential(spec.latency_scale_ms[variant], len(index))
                )
                sent = intended.copy()
                if spec.generator_limit_per_s is not None:
                    sent, carry.sent_max = _fifo_part(
                        intended, 1000.0 / spec.generator_limit_per_s, low, carry.sent_max
                    )
                ids = (
                    _ids(variant, trial, index)
                    if request_ids == "short"
                    else _uuid_ids(np.random.default_rng([spec.seed, trial, 2, low]), len(index))
                )
                poison = poison_rng.random(len(index)) < spec.poison_share
                n = len(index)

                def drain(release: np.ndarray, low: int = low, carry: _Carry = carry) -> np.ndarray:
                    drained, carry.drain_max = _fifo_part(
                        release, 1000.0 / spec.drain_rate_per_s, low, carry.drain_max
                    )
                    return drained

                handled = handle(
                    variant, spec, intended, sent, poison, outage_ms,
                    drain=drain, low=low, stored_before=carry.stored,
                )  # fmt: skip
                outcome, status_code = handled.outcome, handled.status_code
                accepted, stored = handled.accepted, handled.stored
                item_status, retried = handled.item_status, handled.retried
                started_col, processed_col = handled.started, handled.processed
                if variant == "storage_first":
                    parked_index, redriven_index = handled.parked_index, handled.redriven_index
                    parked_ids.append(ids.take(pa.array(parked_index)))
                    parked_at.append(accepted[parked_index] + 5000.0)
                    redriven_ids.append(ids.take(pa.array(redriven_index)))
                    redriven_at.append(accepted[redriven_index] + 590_000.0)
                waited = sent - intended
                carry.late_sends += int((waited > 10.0).sum())
                client = {
                    "attempt": np.ones(n, dtype=np.int16),
                    "intended_at_ms": intended,
                    "sent_at_ms": sent.copy(),
                    "latency_ms": latency,
                    "latency_from_intended_ms": latency + waited,
                    "status_code": status_code,
                    "outcome": outcome,
                    "request_id": ids,
                    "warmup": offsets_s < spec.warmup_s,
                    "target_rate_per_s": rates[stage_index],
                    "stage": stage_index,
                }
                if retried.any():
                    client = _with_failed_first_attempts(client, retried, waited)
                rows = len(client["intended_at_ms"])
                constants = {"run_id": run_id, "trial": trial, "variant": variant}
                files["client"].append(
                    {**constants, "scenario": spec.scenario, "worker": "w0", **client}, rows
                )
                carry.client_rows += rows
                del client  # the chunk's columns: freed before the next table is built
                mask = pa.array(stored)
                items = int(stored.sum())
                failed = item_status[stored] == "FAILED"
                files["server"].append(
                    {
                        **constants,
                        "request_id": ids.filter(mask),
                        "status": item_status[stored],
                        "attempts": 1,
                        "duplicates": 0,
                        "accepted_at_ms": accepted[stored],
                        "started_at_ms": started_col[stored],
                        "processed_at_ms": processed_col[stored],
                        "error": pc.if_else(
                            pa.array(failed), "poison request", pa.scalar(None, pa.string())
                        ),
                        "cold_start": index[stored] == 0,
                        "request_bytes": 100,
                    },
                    items,
                )
                carry.stored += items
                files["metrics"].append(
                    {
                        **constants,
                        "source": "local",
                        "metric": _two_runs("Invocations", "Duration", items),
                        "timestamp_ms": np.tile(processed_col[stored], 2),
                        "value": np.concatenate(
                            [np.ones(items), np.full(items, spec.work_ms + 0.3)]
                        ),
                        "unit": _two_runs("Count", "Milliseconds", items),
                    },
                    2 * items,
                )
            for kind, file in files.items():
                written(file.close().stem, file.rows, kind)
            if variant == "storage_first":
                _write_trial_tables(
                    run_dir, run_id, trial, parked_ids, parked_at, redriven_ids, redriven_at
                )
            trials.append(
                trial_row(
                    spec,
                    run_id,
                    trial,
                    repetition,
                    variant,
                    start_ms,
                    outage_ms,
                    rows_written=carry.client_rows,
                    late_sends=carry.late_sends,
                )
            )
    schema.write_table(run_dir, schema.TRIALS, pd.DataFrame(trials))
    schema.write_manifest(run_dir, synthetic_manifest(spec, run_id))
    return PartsWritten(
        run_dir=run_dir,
        client_rows=totals["client"],
        server_rows=totals["server"],
        metric_rows=totals["metrics"],
        parts=totals["parts"],
    )


def _with_failed_first_attempts(
    client: dict[str, Any], retried: np.ndarray, waited: np.ndarray
) -> dict[str, Any]:
    """The part's client columns with, before them, the failed first attempt (a 502 with no
    request id, 3 ms) of each retried request, whose own row becomes attempt 2, 103 ms later."""
    failed = {
        name: values.filter(pa.array(retried)) if isinstance(values, pa.Array) else values[retried]
        for name, values in client.items()
    }
    count = int(retried.sum())
    failed.update(
        outcome=np.full(count, "server_error", object),
        status_code=np.full(count, 502),
        request_id=pa.nulls(count, pa.string()),
        latency_ms=np.full(count, 3.0),
        latency_from_intended_ms=3.0 + waited[retried],
    )
    client["attempt"][retried] = 2
    client["sent_at_ms"][retried] += 103.0
    client["latency_from_intended_ms"][retried] += 103.0
    return {
        name: pa.concat_arrays([failed[name], values])
        if isinstance(values, pa.Array)
        else np.concatenate([failed[name], values])
        for name, values in client.items()
    }


def _write_trial_tables(
    run_dir: Path,
    run_id: str,
    trial: int,
    parked_ids: list[pa.Array],
    parked_at: list[np.ndarray],
    redriven_ids: list[pa.Array],
    redriven_at: list[np.ndarray],
) -> None:
    """One storage-first trial's parked and re-driven rows (a few per trial: held until the
    trial's last part)."""
    constants = {"run_id": run_id, "trial": trial, "variant": "storage_first"}
    parked = pa.concat_arrays(parked_ids) if parked_ids else pa.array([], pa.string())
    if len(parked):
        schema.write_columns(
            run_dir, schema.PARKED,
            {
                **constants, "request_id": parked, "shard_id": "shard-0", "batch_size": 1,
                "condition": "RetryAttemptsExhausted", "timestamp_ms": np.concatenate(parked_at),
                "raw": "{}",
            },
            len(parked), part=f"parked-{trial:04d}",
        )  # fmt: skip
    redriven = pa.concat_arrays(redriven_ids) if redriven_ids else pa.array([], pa.string())
    if len(redriven):
        schema.write_columns(
            run_dir, schema.REDRIVEN,
            {
                **constants, "request_id": redriven, "source": "parked",
                "redriven_at_ms": np.concatenate(redriven_at), "status_before": "PENDING",
                "status_after": "SUCCEEDED",
            },
            len(redriven), part=f"redrive-{trial:04d}",
        )  # fmt: skip
