"""Plain Locust on one variant: ``locust -f loadtests/locustfile.py --scenario baseline
--variant storage_first [--endpoints FILE] [--target local|aws] [--asyncbench-out DIR]``.

For Locust users who start with ``locust -f`` and its web UI (or ``--headless``). The scenario
is the load shape (:class:`ScenarioShape`); the users are asyncbench's own open-loop users, so
every request keeps its intended send time, and every attempt is recorded as the same raw
CLIENT row ``asyncbench run`` writes. Each start of the test (in the web UI, or the one
headless test) is one trial of a run folder under ``reports/`` that ``asyncbench report`` reads;
the server side is collected after each trial as ``asyncbench run`` does. The manifest says
``"interleaved": false`` and names the one variant: these trials were not alternated with the
other variant in random order, so the comparison between variants carries no such protection.

One Locust process only (no ``--processes``/``--worker``): ``asyncbench run --processes`` or
``--expect-workers`` is the distributed path. Endpoints come from the usual file (``asyncbench
local up`` or ``asyncbench deploy``). ``--host`` is ignored: the endpoints file says where.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.runners import LocalRunner

from asyncbench.paths import reports_dir
from loadtests.collect import TrialWindow, collect_trial
from loadtests.engine import WorkerTally, assemble_result, seconds_in_flight, trial_setup
from loadtests.pacing import users_needed
from loadtests.recorder import PartWriter, Recorder
from loadtests.run import (
    RunFolder,
    RunRequest,
    base_manifest,
    make_stage_side,
    server_part_writer,
    trial_row,
)
from loadtests.scenario import Scenario, load_scenario
from loadtests.trials import PlannedTrial, draw_seed, make_run_id
from loadtests.users import TrialContext, TrialRound, make_user_class
from loadtests.wire import TrialPlan
from reports.schema import CLIENT, read_table
from stack.endpoints import default_endpoints_path, read_endpoints

__all__ = ["AsyncbenchUser", "ScenarioShape"]

WORKER = "w0"
LEAD_S = 0.5
"""Between the test's start and time zero: users spawn meanwhile."""

CONTEXT = TrialContext()
AsyncbenchUser = make_user_class(CONTEXT)


class _Run:
    """The run folder this Locust process writes, trial after trial."""

    def __init__(self, environment: Any) -> None:
        options = environment.parsed_options
        self.scenario: Scenario = load_scenario(options.scenario)
        endpoints_path = (
            Path(options.endpoints) if options.endpoints else default_endpoints_path(options.target)
        )
        self.endpoints = read_endpoints(endpoints_path, target=options.target)
        self.variant: str = options.variant
        self.base_url = self.endpoints.variant(self.variant).base_url
        self.seed = draw_seed()
        started_ms = time.time() * 1000.0
        self.run_id = make_run_id(self.scenario.name, now_s=started_ms / 1000.0)
        out = Path(options.asyncbench_out) if options.asyncbench_out else reports_dir()
        self.run_dir = out / self.run_id
        self.side = make_stage_side(self.endpoints, self.run_id)
        self.side.check()
        request = RunRequest(
            scenario=self.scenario,
            endpoints=self.endpoints,
            repetitions=1,
            seed=self.seed,
            out_dir=out,
            overrides={"locustfile": True, "endpoints_file": str(endpoints_path)},
        )
        planned = [PlannedTrial(1, 1, self.variant)]
        manifest = base_manifest(request, self.run_id, planned, started_ms)
        manifest["interleaved"] = False
        manifest["trial_order"] = []  # filled trial by trial: each test start is one
        self.folder = RunFolder(self.run_dir, manifest)
        self.trial = 0
        self.plan: TrialPlan | None = None
        self.writer: PartWriter | None = None
        self.recorder: Recorder | None = None
        self.round: TrialRound | None = None
        self.collected: dict[str, int] = {}
        self.windows: list[TrialWindow] = []
        gevent.spawn(self._flush_when_due)

    @property
    def users(self) -> int:
        return users_needed(
            self.scenario.peak_rate_per_s, seconds_in_flight=seconds_in_flight(self.scenario)
        )

    def _flush_when_due(self) -> None:
        while True:
            if self.recorder is not None and self.recorder.due():
                self.recorder.flush()
            gevent.sleep(0.2)

    def start_trial(self) -> None:
        self.trial += 1
        self.side.begin_trial()
        self.plan = TrialPlan(
            run_id=self.run_id, trial=self.trial, repetition=self.trial, variant=self.variant,
            base_url=self.base_url, scenario=self.scenario, run_dir=self.run_dir,
            started_at_ms=time.time() * 1000.0, seed=self.seed * 1000 + self.trial,
        )  # fmt: skip
        self.writer = PartWriter(self.run_dir, self.trial)
        self.recorder = Recorder(self.writer)
        CONTEXT.prepare(trial_setup(self.plan, WORKER, self.recorder))
        zero_ms = time.time() * 1000.0 + LEAD_S * 1000.0
        self.round = CONTEXT.arm(zero_ms, index=0, count=1, seed=self.plan.seed)
        self.folder.manifest["trial_order"].append(
            {"trial": self.trial, "repetition": self.trial, "variant": self.variant}
        )

    def end_trial(self) -> None:
        current, plan, writer, recorder = self.round, self.plan, self.writer, self.recorder
        if current is None or plan is None or writer is None or recorder is None:
            return
        ended_ms = time.time() * 1000.0
        interrupted = not current.finished
        CONTEXT.close()
        recorder.close()
        self.round = None
        tally = WorkerTally(
            counted=current.counted,
            written=writer.written.get(WORKER, 0),
            late=current.pacer.late,
            dropped=current.dropped,
        )
        result = assemble_result(
            plan, zero_ms=current.zero_ms, ready_ms=current.zero_ms, ended_ms=ended_ms,
            tallies={WORKER: tally}, lost=[], record=True, interrupted=interrupted,
            users=self.users, cpu_s=0.0,
        )  # fmt: skip
        window = TrialWindow(self.run_id, self.trial, self.variant, current.zero_ms, ended_ms)
        print(f"asyncbench: collecting trial {self.trial} of {self.run_dir}", file=sys.stderr)
        collection = collect_trial(
            self.side,
            window,
            read_table(self.run_dir, CLIENT),
            timeout_s=self.scenario.collection_timeout_s,
            skip_ids=frozenset(self.collected),
            earlier_trials=self.collected,
            earlier=tuple(self.windows),
            server_sink=server_part_writer(self.run_dir, self.trial),
            progress=lambda line: print(f"asyncbench: {line}", file=sys.stderr),
        )
        self.collected.update(collection.trials)
        self.windows.append(window)
        planned = PlannedTrial(self.trial, self.trial, self.variant)
        row = trial_row(
            self.run_id, planned, self.scenario, result, collection, complete=not interrupted
        )
        self.folder.add_trial(row, collection)
        print(f"asyncbench: trial {self.trial} recorded in {self.run_dir}", file=sys.stderr)

    def finish(self) -> None:
        self.end_trial()
        self.folder.finish(partial=False, error=None)
        print(self.run_dir)


_RUNS: list[_Run] = []


def _current() -> _Run | None:
    return _RUNS[0] if _RUNS else None


class ScenarioShape(LoadTestShape):
    """The scenario as Locust's load shape: the users its peak rate needs, until the schedule
    is sent and answered. The rate itself is paced by the users (open loop, on the schedule)."""

    def tick(self) -> tuple[int, float] | None:
        run = _current()
        if run is None:
            return None
        current = run.round
        if current is not None and current.finished:
            return None
        return run.users, max(100.0, run.users * 20.0)


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("asyncbench")
    group.add_argument("--scenario", default="baseline", help="scenario name or TOML file")
    group.add_argument("--variant", default="storage_first", choices=["direct", "storage_first"])
    group.add_argument("--target", default="local", choices=["local", "aws"])
    group.add_argument("--endpoints", default="", help="endpoints file (default: the target's)")
    group.add_argument(
        "--asyncbench-out", default="", help="parent folder of the run folder (default reports/)"
    )


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    if environment.parsed_options is None:
        return  # imported by a test or a tool, not run by Locust
    if environment.runner is not None and not isinstance(environment.runner, LocalRunner):
        raise SystemExit(
            "loadtests/locustfile.py runs in one Locust process; for several use "
            "`asyncbench run --processes N` or `--expect-workers N`"
        )
    environment.events.request.add_listener(CONTEXT.count_request)
    _RUNS.append(_Run(environment))
    print(f"asyncbench: recording into {_RUNS[0].run_dir}", file=sys.stderr)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    run = _current()
    if run is not None:
        run.start_trial()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    run = _current()
    if run is not None:
        run.end_trial()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    run = _current()
    if run is not None:
        run.finish()
