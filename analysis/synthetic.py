"""Synthetic run folders with known answers, for tests, the benchmark and demos of the report.

Latencies are ``offset + Exponential(scale)`` per variant, so every true quantile is known:
``offset - scale * ln(1 - q)``. Storage-first items are processed by a FIFO processor with a
constant ``lag_ms`` and a finite ``drain_rate_per_s``; an outage holds every release inside its
window until the window ends, so backlog and recovery follow queueing arithmetic. Rows are
written only through ``reports.schema``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import schema

__all__ = [
    "SyntheticRun",
    "SyntheticSpec",
    "build_run",
    "synthetic_manifest",
    "true_quantile",
    "write_run",
]

VARIANTS = ("direct", "storage_first")
EPOCH_MS = 1_800_000_000_000.0


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Times in seconds relative to each trial's start unless named *_ms."""

    scenario: str = "baseline"
    stages: tuple[tuple[float, float], ...] = ((60.0, 50.0),)  # (duration_s, rate_per_s)
    warmup_s: float = 0.0
    repetitions: int = 2
    latency_offset_ms: dict[str, float] = field(
        default_factory=lambda: {"direct": 40.0, "storage_first": 10.0}
    )
    latency_scale_ms: dict[str, float] = field(
        default_factory=lambda: {"direct": 20.0, "storage_first": 5.0}
    )
    lag_ms: float = 200.0
    work_ms: float = 20.0
    drain_rate_per_s: float = 1000.0
    outage: tuple[float, float] | None = None  # (start_s, duration_s)
    poison_share: float = 0.0
    lost_per_trial: int = 0  # storage_first: accepted items that vanish (never stored)
    parked_per_trial: int = 0  # storage_first: items left PENDING but parked
    # storage_first: items still PENDING when collection hit its deadline (unresolved)
    pending_per_trial: int = 0
    # storage_first: parked items a re-drive later turned SUCCEEDED (rows in data/redriven)
    redriven_per_trial: int = 0
    # direct: requests whose first attempt got a 502 and a client retry a 200
    retried_per_trial: int = 0
    # slots of the schedule never sent per trial (None: the generator did not count them)
    dropped_per_trial: int | None = 0
    workers_lost_per_trial: int = 0
    # the most the generator sends per second (None: on time); later sends keep their
    # intended time, so latency from intended time includes the wait
    generator_limit_per_s: float | None = None
    # latency multiplier of each repetition (between-trial drift), per variant
    drift: dict[str, tuple[float, ...]] = field(default_factory=dict)
    capacity: bool = False  # the scenario declares itself a capacity scenario
    target: str = "local"
    partial: bool = False
    seed: int = 7
    trial_gap_s: float = 30.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class SyntheticRun:
    manifest: dict[str, Any]
    client: pd.DataFrame
    server: pd.DataFrame
    parked: pd.DataFrame
    metrics: pd.DataFrame
    trials: pd.DataFrame
    redriven: pd.DataFrame = field(default_factory=lambda: schema.empty_frame(schema.REDRIVEN))


def true_quantile(spec: SyntheticSpec, variant: str, q: float) -> float:
    """The generating distribution's q-quantile of latency_ms for ``variant``."""
    return float(spec.latency_offset_ms[variant] - spec.latency_scale_ms[variant] * np.log1p(-q))


def _intended_times(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (s) from trial start, stage index and stage rate of each request."""
    times, stages, rates = [], [], []
    start = 0.0
    for index, (duration, rate) in enumerate(spec.stages):
        count = round(duration * rate)
        times.append(start + np.arange(count) / rate)
        stages.append(np.full(count, index))
        rates.append(np.full(count, rate))
        start += duration
    return np.concatenate(times), np.concatenate(stages), np.concatenate(rates)


def _fifo(release_ms: np.ndarray, service_ms: float) -> np.ndarray:
    """Completion times of a FIFO single server: c_i = max(r_i, c_{i-1} + s), vectorised."""
    index = np.arange(len(release_ms)) * service_ms
    return index + np.maximum.accumulate(release_ms - index)


def _client_frame(
    run_id: str, trial: int, variant: str, spec: SyntheticSpec, **columns: Any
) -> pd.DataFrame:
    return pd.DataFrame(
        {"run_id": run_id, "trial": trial, "variant": variant, "scenario": spec.scenario,
         "worker": "w0", **columns}
    )  # fmt: skip


@dataclass(frozen=True)
class Handled:
    """What the stage did with a slice of one trial's requests, by the handlers' rules."""

    outcome: np.ndarray
    status_code: np.ndarray
    accepted: np.ndarray
    started: np.ndarray
    processed: np.ndarray
    """NaN for an item left PENDING."""
    stored: np.ndarray
    item_status: np.ndarray
    retried: np.ndarray
    """Requests whose first attempt failed with a 502 and whose retry stored the item."""
    parked_index: np.ndarray
    redriven_index: np.ndarray


def handle(
    variant: str,
    spec: SyntheticSpec,
    intended: np.ndarray,
    sent: np.ndarray,
    poison: np.ndarray,
    outage_ms: tuple[float, float] | None,
    *,
    drain: Callable[[np.ndarray], np.ndarray],
    low: int = 0,
    stored_before: int = 0,
) -> Handled:
    """The requests ``low``.. of a trial (``stored_before`` items stored before them) as the
    real handlers treat them: direct stores an item only for a 200 (never for a 400 or a
    502); storage-first stores every request, its processor drains them through ``drain``
    (completion times of a FIFO server), and the spec's lost, parked, re-driven and pending
    requests are marked at fixed positions of the trial."""
    n = len(intended)
    outcome = np.full(n, "succeeded" if variant == "direct" else "accepted", object)
    status_code = np.full(n, 200 if variant == "direct" else 202)
    accepted = sent.copy()
    started = accepted + 1.0
    processed = started + spec.work_ms
    stored = np.ones(n, dtype=bool)
    item_status = np.where(poison, "FAILED", "SUCCEEDED").astype(object)
    retried = np.zeros(n, dtype=bool)
    parked_index = redriven_index = np.zeros(0, dtype=np.int64)
    if variant == "direct":
        # processor/direct.py: a poison request is a 400 and stores nothing.
        outcome[poison] = "rejected"
        status_code[poison] = 400
        stored &= ~poison
        if outage_ms is not None:
            down = (intended >= outage_ms[0]) & (intended < outage_ms[1])
            outcome[down] = "server_error"
            status_code[down] = 502
            stored &= ~down  # a direct 502 during an outage stores nothing
        # Every 13th stored item from the 4th on, retried_per_trial of them, was retried.
        rank = stored_before + np.cumsum(stored) - 1
        last_rank = 3 + 13 * spec.retried_per_trial
        retried = stored & (rank >= 3) & (rank < last_rank) & ((rank - 3) % 13 == 0)
    else:
        release = accepted + spec.lag_ms
        if outage_ms is not None:
            held = (release >= outage_ms[0]) & (release < outage_ms[1])
            release[held] = outage_ms[1]
        processed = drain(release) + spec.work_ms
        started = processed - spec.work_ms
    processed = processed.astype(np.float64)
    started = started.astype(np.float64)
    if variant == "storage_first":
        high = low + n
        stored[_in_slice(np.arange(spec.lost_per_trial) * 7 + 3, low, high)] = False
        parked_all = np.arange(spec.parked_per_trial + spec.redriven_per_trial) * 11 + 5
        parked_index = _in_slice(parked_all, low, high)
        item_status[parked_index] = "PENDING"
        processed[parked_index] = np.nan
        # A re-drive turned the last redriven_per_trial parked items SUCCEEDED.
        redriven_index = _in_slice(parked_all[spec.parked_per_trial :], low, high)
        item_status[redriven_index] = "SUCCEEDED"
        processed[redriven_index] = accepted[redriven_index] + 600_000.0
        pending_index = _in_slice(np.arange(spec.pending_per_trial) * 13 + 8, low, high)
        item_status[pending_index] = "PENDING"
        processed[pending_index] = np.nan
    return Handled(
        outcome, status_code, accepted, started, processed, stored, item_status, retried,
        parked_index, redriven_index,
    )  # fmt: skip


def _in_slice(indices: np.ndarray, low: int, high: int) -> np.ndarray:
    """The trial-wide ``indices`` that fall in requests low..high-1, relative to low."""
    return indices[(indices >= low) & (indices < high)] - low


def trial_row(
    spec: SyntheticSpec,
    run_id: str,
    trial: int,
    repetition: int,
    variant: str,
    start_ms: float,
    outage_ms: tuple[float, float] | None,
    *,
    rows_written: int,
    late_sends: int,
) -> dict[str, Any]:
    """The TRIALS row of one synthetic trial."""
    trial_length_s = float(sum(duration for duration, _ in spec.stages))
    return {
        "run_id": run_id,
        "trial": trial,
        "repetition": repetition,
        "variant": variant,
        "scenario": spec.scenario,
        "started_at_ms": start_ms,
        "ended_at_ms": start_ms + trial_length_s * 1000,
        "warmup_until_ms": start_ms + spec.warmup_s * 1000,
        "outage_start_ms": outage_ms[0] if outage_ms else np.nan,
        "outage_end_ms": outage_ms[1] if outage_ms else np.nan,
        "rows_written": rows_written,
        "late_sends": late_sends,
        "dropped_sends": spec.dropped_per_trial,
        "workers_lost": spec.workers_lost_per_trial,
        "unfinished": spec.pending_per_trial if variant == "storage_first" else 0,
        "complete": True,
    }


def build_run(spec: SyntheticSpec, run_id: str = "synthetic") -> SyntheticRun:
    """Frames of one run of ``spec`` (interleaved trials, direct first), shaped as the real
    handlers write them: direct stores an item only for a 200 (never for a 400 or a 502)."""
    rng = np.random.default_rng(spec.seed)
    offsets_s, stage_index, stage_rate = _intended_times(spec)
    count = len(offsets_s)
    trial_length_s = float(sum(duration for duration, _ in spec.stages))
    clients, servers, parked, metrics, trials, redriven = [], [], [], [], [], []
    trial = 0
    for repetition in range(1, spec.repetitions + 1):
        for variant in VARIANTS:
            trial += 1
            start_ms = EPOCH_MS + (trial - 1) * (trial_length_s + spec.trial_gap_s) * 1000
            intended = start_ms + offsets_s * 1000
            drift = spec.drift.get(variant, ())
            factor = drift[(repetition - 1) % len(drift)] if drift else 1.0
            latency = factor * (
                spec.latency_offset_ms[variant]
                + rng.exponential(spec.latency_scale_ms[variant], count)
            )
            sent = intended.copy()
            if spec.generator_limit_per_s is not None:
                sent = _fifo(intended, 1000.0 / spec.generator_limit_per_s)
            ids = pd.Series(np.arange(count)).astype(str).radd(f"{variant[0]}{trial}-").to_numpy()
            poison = rng.random(count) < spec.poison_share
            outage_ms = None
            if spec.outage is not None:
                outage_ms = (
                    start_ms + spec.outage[0] * 1000,
                    start_ms + (spec.outage[0] + spec.outage[1]) * 1000,
                )
            handled = handle(
                variant, spec, intended, sent, poison, outage_ms,
                drain=lambda release: _fifo(release, 1000.0 / spec.drain_rate_per_s),
            )  # fmt: skip
            outcome, status_code = handled.outcome, handled.status_code
            accepted, stored, item_status = handled.accepted, handled.stored, handled.item_status
            started_col, processed_col = handled.started, handled.processed
            retried = handled.retried
            parked_index, redriven_index = handled.parked_index, handled.redriven_index
            if variant == "storage_first":
                parked.append(
                    pd.DataFrame(
                        {
                            "run_id": run_id,
                            "trial": trial,
                            "variant": variant,
                            "request_id": ids[parked_index],
                            "shard_id": "shard-0",
                            "batch_size": 1,
                            "condition": "RetryAttemptsExhausted",
                            "timestamp_ms": accepted[parked_index] + 5000.0,
                            "raw": "{}",
                        }
                    )
                )
                redriven.append(
                    pd.DataFrame(
                        {
                            "run_id": run_id,
                            "trial": trial,
                            "variant": variant,
                            "request_id": ids[redriven_index],
                            "source": "parked",
                            "redriven_at_ms": accepted[redriven_index] + 590_000.0,
                            "status_before": "PENDING",
                            "status_after": "SUCCEEDED",
                        }
                    )
                )
            warmup = offsets_s < spec.warmup_s
            waited = sent - intended
            first = _client_frame(
                run_id, trial, variant, spec,
                attempt=1, intended_at_ms=intended, sent_at_ms=sent, latency_ms=latency,
                latency_from_intended_ms=latency + waited, status_code=status_code,
                outcome=outcome, request_id=ids, warmup=warmup, target_rate_per_s=stage_rate,
                stage=stage_index,
            )  # fmt: skip
            if retried.any():
                # The first attempt failed with a 502 (API Gateway gives no request id to
                # match); the retry 100 ms later got the 200 and the stored item.
                failed = first.loc[retried].assign(
                    outcome="server_error", status_code=502, request_id=None, latency_ms=3.0,
                    latency_from_intended_ms=3.0 + waited[retried],
                )  # fmt: skip
                first.loc[retried, "attempt"] = 2
                first.loc[retried, "sent_at_ms"] += 103.0
                first.loc[retried, "latency_from_intended_ms"] += 103.0
                first = pd.concat([failed, first], ignore_index=True)
            clients.append(first)
            servers.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "trial": trial,
                        "variant": variant,
                        "request_id": ids[stored],
                        "status": item_status[stored],
                        "attempts": 1,
                        "duplicates": 0,
                        "accepted_at_ms": accepted[stored],
                        "started_at_ms": started_col[stored],
                        "processed_at_ms": processed_col[stored],
                        "error": pd.Series(item_status[stored]).map({"FAILED": "poison request"}),
                        "cold_start": np.arange(count)[stored] == 0,
                        "request_bytes": 100,
                    }
                )
            )
            invocations = int(stored.sum())
            metrics.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "trial": trial,
                        "variant": variant,
                        "source": "local",
                        "metric": np.repeat(["Invocations", "Duration"], invocations),
                        "timestamp_ms": np.tile(processed_col[stored], 2),
                        "value": np.concatenate(
                            [np.ones(invocations), np.full(invocations, spec.work_ms + 0.3)]
                        ),
                        "unit": np.repeat(["Count", "Milliseconds"], invocations),
                    }
                )
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
                    rows_written=len(first),
                    late_sends=int((waited > 10.0).sum()),
                )
            )
    manifest = synthetic_manifest(spec, run_id)
    return SyntheticRun(
        manifest=manifest,
        client=pd.concat(clients, ignore_index=True),
        server=pd.concat(servers, ignore_index=True),
        parked=pd.concat(parked, ignore_index=True)
        if parked
        else schema.empty_frame(schema.PARKED),
        metrics=pd.concat(metrics, ignore_index=True),
        trials=pd.DataFrame(trials),
        redriven=pd.concat(redriven, ignore_index=True)
        if redriven
        else schema.empty_frame(schema.REDRIVEN),
    )


def synthetic_manifest(spec: SyntheticSpec, run_id: str) -> dict[str, Any]:
    """The manifest of a synthetic run of ``spec`` (every generator of one writes the same)."""
    return {
        "run_id": run_id,
        "suite": {"version": "0.1.0", "git_revision": "synthetic"},
        "scenario": {
            "name": spec.scenario,
            "description": "synthetic run with known answers",
            "stages": [{"duration_s": d, "rate_per_s": r} for d, r in spec.stages],
            "warmup_s": spec.warmup_s,
            "work_ms": spec.work_ms,
            "poison_share": spec.poison_share,
            "outage": (
                {"start_s": spec.outage[0], "duration_s": spec.outage[1]} if spec.outage else None
            ),
            "repetitions": spec.repetitions,
            **({"capacity": True} if spec.capacity else {}),
        },
        "stack_config": {"memory_mb": spec.memory_mb, "architecture": "arm64"},
        "target": spec.target,
        "region": "local" if spec.target == "local" else "us-east-1",
        "machine": {"cpus": 2},
        "libraries": {},
        "seed": spec.seed,
        "started_at": "2027-01-15T08:00:00Z",
        "ended_at": "2027-01-15T09:00:00Z",
        "partial": spec.partial,
    }


def write_run(run_dir: Path, run: SyntheticRun) -> Path:
    """Write ``run`` as a run folder through the schema module; returns the folder."""
    schema.write_manifest(run_dir, run.manifest)
    schema.write_table(run_dir, schema.CLIENT, run.client, part="client-0001")
    schema.write_table(run_dir, schema.SERVER, run.server, part="server-0001")
    if len(run.parked):
        schema.write_table(run_dir, schema.PARKED, run.parked, part="parked-0001")
    schema.write_table(run_dir, schema.METRICS, run.metrics, part="metrics-0001")
    schema.write_table(run_dir, schema.TRIALS, run.trials)
    if len(run.redriven):
        schema.write_table(run_dir, schema.REDRIVEN, run.redriven, part="redrive-0001")
    return run_dir
