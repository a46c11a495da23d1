"""One run: the trial plan driven trial by trial, each collected, into ``reports/<run_id>/``.

The manifest is written before the first trial (``partial: true``) and rewritten after every
trial, and TRIALS rows are rewritten after every trial too, so a run that is interrupted (or
crashes) still leaves a valid folder that says how far it got. Stopping is cooperative: the
caller sets ``control.stop`` to end the current trial (collection then gets a short deadline)
and ``control.abort`` to skip what is left of collection.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from asyncbench.errors import RunError
from loadtests import provenance
from loadtests.collect import (
    ServerSink,
    StageSide,
    TrialCollection,
    TrialWindow,
    collect_trial,
)
from loadtests.progress import ProgressDisplay
from loadtests.scenario import Scenario
from loadtests.trials import (
    PlannedTrial,
    make_run_id,
    plan_configuration_trials,
    plan_trials,
)
from loadtests.wire import DEFAULT_MASTER_PORT
from reports.schema import CLIENT, METRICS, PARKED, SERVER, TRIALS, read_table, write_manifest
from reports.schema import write_table as write_rows
from stack.endpoints import Endpoints

__all__ = [
    "RunControl",
    "RunFolder",
    "RunOutcome",
    "RunRequest",
    "base_manifest",
    "execute_run",
    "make_stage_side",
    "trial_row",
]


@dataclass(frozen=True)
class RunRequest:
    """What ``asyncbench run`` was asked to do, resolved (scenario overrides already applied)."""

    scenario: Scenario
    endpoints: Endpoints
    repetitions: int
    seed: int
    out_dir: Path
    """Parent folder; the run folder is ``out_dir / run_id``."""
    processes: int = 1
    expect_workers: int = 0
    master_bind_host: str = "*"
    """Interface the master listens on for remote workers."""
    master_port: int = DEFAULT_MASTER_PORT
    web_port: int | None = None
    """Open Locust's web UI on this port to watch the trials (changes nothing recorded)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Command-line overrides as given (rate, duration, repetitions), for the manifest."""
    settle_s: float = 0.0
    """Pause between trials. None by default: collection already waited until the trial's
    accepted requests were terminal, so nothing of it loads the next trial."""
    interrupted_collection_timeout_s: float = 10.0
    start_lead_s: float = 0.0
    """Earliest time zero after the trial is handed to the (warm) load generator; it adds its
    own short lead once it is ready."""
    tune: TuneSpec | None = None
    """``asyncbench tune``: trials of one variant under the configurations of a grid."""


@dataclass(frozen=True)
class TuneSpec:
    """The configurations a tune run interleaves, and what its manifest records."""

    variant: str
    configurations: dict[str, dict[str, Any]]
    """Label -> the settings applied in place before each of its trials."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """Grid, rate, SLOs and the deployed settings (merged into the manifest's ``tune``)."""


@dataclass
class RunControl:
    """Cooperative stop: ``stop`` ends the current trial and the run; ``abort`` also collection."""

    stop: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    run_id: str
    partial: bool
    trials_done: int


def make_stage_side(endpoints: Endpoints, run_id: str) -> StageSide:
    """The collector for the endpoints' target."""
    if endpoints.target == "local":
        from loadtests.collect_local import LocalStageSide

        return LocalStageSide(endpoints, run_id)
    from loadtests.collect_aws import AwsStageSide

    return AwsStageSide(endpoints, run_id)


def _load_driver() -> Any:
    # Imported on use: Locust monkey-patches the standard library with gevent when imported.
    from loadtests import driver

    return driver


def _stack_config(endpoints: Endpoints) -> Any:
    """The stage's config if the endpoints file carries it (the local stage and deploy do)."""
    for key in ("stack_config", "config"):
        if isinstance(endpoints.extra.get(key), dict):
            return endpoints.extra[key]
    return None


def base_manifest(
    request: RunRequest, run_id: str, plan: list[PlannedTrial], started_ms: float
) -> dict[str, Any]:
    endpoints = request.endpoints
    return {
        "run_id": run_id,
        "suite": provenance.suite(),
        "scenario": {"name": request.scenario.name, "parameters": request.scenario.to_dict()},
        "overrides": request.overrides,
        "stack_config": _stack_config(endpoints),
        "target": endpoints.target,
        "region": endpoints.region,
        "endpoints": endpoints.to_dict(),
        "machine": provenance.machine(),
        "libraries": provenance.library_versions(),
        "seed": request.seed,
        "repetitions": request.repetitions,
        "processes": request.processes,
        "expect_workers": request.expect_workers,
        # Which variants the run drove, and whether their trials alternated in random order
        # (`asyncbench run`) or not (a plain `locust -f loadtests/locustfile.py` run: one variant).
        "variants": sorted({t.variant for t in plan}),
        "interleaved": True,
        "trial_order": [
            {"trial": t.trial, "repetition": t.repetition, "variant": t.variant}
            | ({"configuration": t.configuration} if t.configuration is not None else {})
            for t in plan
        ],
        "started_at": provenance.timestamp(started_ms),
        "ended_at": None,
        "trials_done": 0,
        "partial": True,
        "error": None,
    } | (_tune_manifest(request.tune, plan) if request.tune is not None else {})


def _tune_manifest(tune: TuneSpec, plan: list[PlannedTrial]) -> dict[str, Any]:
    """The manifest's ``tune``: which configuration each trial ran under (TRIALS keeps its
    schema; the trial number joins them)."""
    return {
        "tune": {
            **tune.manifest,
            "variant": tune.variant,
            "configurations": tune.configurations,
            "trial_configurations": {str(t.trial): t.configuration for t in plan},
        }
    }


class ServerPartWriter:
    """A trial's SERVER parts as collection reads them (a :class:`ServerSink`): each poll's
    parts are written under ``.staging/`` in the run folder (no reader looks there) and only
    the kept ones move to ``data/server/trial-TTT-PPPP.parquet``."""

    def __init__(self, run_dir: Path, trial: int) -> None:
        self.run_dir = run_dir
        self.trial = trial
        self.staging = run_dir / ".staging" / f"trial-{trial:03d}"
        self.written: list[Path] = []

    def write(self, part: pd.DataFrame) -> None:
        name = f"trial-{self.trial:03d}-{len(self.written) + 1:04d}"
        self.written.append(write_rows(self.staging, SERVER, part, part=name))

    def discard(self) -> None:
        for path in self.written:
            path.unlink()
        self.written = []

    def keep(self) -> None:
        target = self.run_dir / SERVER.location
        target.mkdir(parents=True, exist_ok=True)
        for path in self.written:
            path.replace(target / path.name)
        shutil.rmtree(self.staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # other trials' staging may still be there
            self.staging.parent.rmdir()


def server_part_writer(run_dir: Path, trial: int) -> ServerSink:
    """Where collection writes a trial's SERVER rows (see :class:`ServerPartWriter`)."""
    return ServerPartWriter(run_dir, trial)


class RunFolder:
    """Writes one run's folder; the manifest and TRIALS are rewritten after every trial."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.trial_rows: list[dict[str, Any]] = []
        write_manifest(run_dir, manifest)

    def add_trial(self, row: dict[str, Any], collection: TrialCollection | None) -> None:
        part = f"trial-{row['trial']:03d}"
        if collection is not None:
            if not collection.server_parts:  # else the sink wrote them while collecting
                write_rows(self.run_dir, SERVER, collection.server, part=part)
            write_rows(self.run_dir, PARKED, collection.parked, part=part)
            write_rows(self.run_dir, METRICS, collection.metrics, part=part)
        self.trial_rows.append(row)
        write_rows(self.run_dir, TRIALS, pd.DataFrame(self.trial_rows))
        self.manifest["trials_done"] = len(self.trial_rows)
        write_manifest(self.run_dir, self.manifest)

    def finish(self, *, partial: bool, error: str | None) -> None:
        self.manifest["ended_at"] = provenance.timestamp()
        self.manifest["partial"] = partial
        self.manifest["error"] = error
        write_manifest(self.run_dir, self.manifest)


def execute_run(
    request: RunRequest,
    *,
    control: RunControl | None = None,
    display: ProgressDisplay | None = None,
    driver: Any = None,
    side_factory: Callable[[Endpoints, str], StageSide] = make_stage_side,
    before_trial: Callable[[PlannedTrial], None] | None = None,
) -> RunOutcome:
    """Drive and collect every planned trial (or until stopped); returns where it all went.

    ``driver`` is the module providing ``TrialPlan`` and ``open_generator`` (the load
    generator, started once and kept warm for every trial; tests pass a stand-in).
    ``before_trial`` runs before each trial is driven (tune applies its configuration). A
    :class:`RunError` from the driver (rows lost) still leaves the folder finished and marked
    partial before it propagates.
    """
    control = control or RunControl()
    display = display or ProgressDisplay()
    driver = driver or _load_driver()
    scenario = request.scenario
    started_ms = time.time() * 1000.0
    run_id = make_run_id(scenario.name, now_s=started_ms / 1000.0)
    run_dir = Path(request.out_dir) / run_id
    if run_dir.exists():
        raise RunError(f"run folder {run_dir} already exists; choose another --out")
    if request.tune is not None:
        plan = plan_configuration_trials(
            request.repetitions, request.seed, request.tune.variant,
            list(request.tune.configurations),
        )  # fmt: skip
    else:
        plan = plan_trials(request.repetitions, request.seed, list(request.endpoints.variants))
    side = side_factory(request.endpoints, run_id)
    side.check()  # a stage that is down fails here, before a run folder exists
    folder = RunFolder(run_dir, base_manifest(request, run_id, plan, started_ms))
    display.message(f"run {run_id}: {len(plan)} trials, seed {request.seed}, into {run_dir}")
    # Per variant: request id -> trial of every item collected so far in the run.
    collected: dict[str, dict[str, int]] = {variant: {} for variant in request.endpoints.variants}
    windows: list[TrialWindow] = []
    complete = True
    error: str | None = None
    generator = driver.open_generator(
        run_dir / "logs",
        processes=request.processes,
        expect_workers=request.expect_workers,
        master_bind_host=request.master_bind_host,
        master_port=request.master_port,
        web_port=request.web_port,
        notice=display.message,
    )
    try:
        for planned in plan:
            if control.stop.is_set():
                complete = False
                break
            if before_trial is not None:
                before_trial(planned)
            row, collection = _one_trial(
                request, planned, len(plan), run_id, run_dir, driver, generator, side, control,
                display, collected[planned.variant], windows,
            )  # fmt: skip
            folder.add_trial(row, collection)
            if not row["complete"]:
                complete = False
                break
            if planned.trial < len(plan) and request.settle_s > 0:
                control.stop.wait(request.settle_s)  # ends at once on Ctrl-C
        _finish_side(side, folder, control, display)
    except BaseException as failure:
        complete = False
        error = f"{type(failure).__name__}: {failure}"
        raise
    finally:
        generator.close()
        folder.finish(partial=not complete or control.abort.is_set(), error=error)
        display.close()
    return RunOutcome(run_dir, run_id, not complete, len(folder.trial_rows))


def _finish_side(
    side: StageSide, folder: RunFolder, control: RunControl, display: ProgressDisplay
) -> None:
    """A stage side that reads its figures once after the last trial (AWS: CloudWatch Logs and
    metrics arrive minutes late) writes them now, with the settle wait shown as progress."""
    finish = getattr(side, "finish_run", None)
    if finish is None or not folder.trial_rows:
        return
    rows = finish(folder.trial_rows, wait=control.abort.wait, progress=display.message)
    if rows:
        write_rows(folder.run_dir, METRICS, pd.DataFrame(rows), part="run")


def trial_row(
    run_id: str,
    planned: PlannedTrial,
    scenario: Scenario,
    result: Any,
    collection: TrialCollection,
    *,
    complete: bool,
) -> dict[str, Any]:
    """The TRIALS row of one driven and collected trial."""
    outage = scenario.outage
    zero_ms = result.started_at_ms  # the time zero the load generator actually used
    return {
        "run_id": run_id,
        "trial": planned.trial,
        "repetition": planned.repetition,
        "variant": planned.variant,
        "scenario": scenario.name,
        "started_at_ms": result.started_at_ms,
        "ended_at_ms": result.ended_at_ms,
        "warmup_until_ms": result.warmup_until_ms,
        "outage_start_ms": zero_ms + outage.start_s * 1000.0 if outage else None,
        "outage_end_ms": (
            zero_ms + (outage.start_s + outage.duration_s) * 1000.0 if outage else None
        ),
        "requests_counted": sum(result.requests_counted.values()),
        "rows_written": sum(result.rows_written.values()),
        "late_sends": result.late_sends,
        "dropped_sends": result.dropped_sends,
        "workers_lost": len(result.workers_lost),
        "unfinished": collection.unfinished,
        "collected_at_ms": collection.collected_at_ms,
        "complete": complete,
    }


def _one_trial(
    request: RunRequest,
    planned: PlannedTrial,
    total: int,
    run_id: str,
    run_dir: Path,
    driver: Any,
    generator: Any,
    side: StageSide,
    control: RunControl,
    display: ProgressDisplay,
    collected_ids: dict[str, int],
    windows: list[TrialWindow],
) -> tuple[dict[str, Any], TrialCollection | None]:
    scenario = request.scenario
    endpoint = request.endpoints.variant(planned.variant)
    shown = planned.variant
    if planned.configuration is not None:
        shown += f" [{planned.configuration}]"
    display.begin_trial(planned.trial, total, shown, planned.repetition)
    side.begin_trial()
    started_at_ms = time.time() * 1000.0 + request.start_lead_s * 1000.0
    plan = driver.TrialPlan(
        run_id=run_id,
        trial=planned.trial,
        repetition=planned.repetition,
        variant=planned.variant,
        base_url=endpoint.base_url,
        scenario=scenario,
        run_dir=run_dir,
        started_at_ms=started_at_ms,
        seed=request.seed * 1000 + planned.trial,
    )
    result = generator.drive(plan, progress=display.load, stop=control.stop)
    interrupted = bool(result.interrupted) or control.stop.is_set()
    window = TrialWindow(
        run_id, planned.trial, planned.variant, result.started_at_ms, result.ended_at_ms
    )
    client = read_table(run_dir, CLIENT)
    timeout = scenario.collection_timeout_s
    if interrupted:
        timeout = min(timeout, request.interrupted_collection_timeout_s)
    collection = collect_trial(
        side,
        window,
        client,
        timeout_s=timeout,
        skip_ids=frozenset(collected_ids),
        earlier_trials=collected_ids,
        earlier=tuple(windows),
        abort=control.abort,
        on_poll=display.collecting,
        server_sink=server_part_writer(run_dir, planned.trial),
        progress=display.message,
    )
    collected_ids.update(collection.trials)
    windows.append(window)
    display.message(
        f"trial {planned.trial}/{total} {planned.variant}: {collection.items} items, "
        f"{len(collection.parked)} parked, {collection.unfinished} unfinished"
        + ("" if collection.settled else " (collection deadline reached)")
    )
    row = trial_row(
        run_id, planned, scenario, result, collection,
        complete=not interrupted and not control.abort.is_set(),
    )  # fmt: skip
    return row, collection
