"""The load-generator process: drives trial after trial with Locust, warm between them.

``python -m loadtests.engine [--processes N] [--expect-workers M] [--master-bind-host H]
[--master-port P]`` is started once per run by ``loadtests.driver`` and imports Locust (which
monkey-patches the process for gevent). It reads :class:`~loadtests.wire.JobMessage` lines on
stdin and answers on stdout (see ``loadtests.wire``); its log is stderr. With one process and no
remote workers it runs a Locust ``LocalRunner`` (:class:`LocalGenerator`); otherwise a
``MasterRunner`` with local or remote workers (``loadtests.distributed.MasterGenerator``). The
runner and its users live for the whole run: a trial only re-arms them with a new round
(``loadtests.users``), so no process starts and no user spawns between trials.

Time zero is ``plan.started_at_ms`` or, when the generator is not ready by then, as soon as it
is (plus :data:`START_LEAD_S`); the result says which zero was used.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from asyncbench.errors import RunError
from loadtests.pacing import Schedule, users_needed
from loadtests.scenario import Scenario
from loadtests.wire import (
    DEFAULT_MASTER_PORT,
    EngineMessage,
    JobMessage,
    TrialLoadResult,
    TrialPlan,
    TrialProgress,
)

__all__ = [
    "DRAIN_GRACE_S",
    "START_LEAD_S",
    "Generator",
    "LocalGenerator",
    "ProgressMeter",
    "Stopping",
    "WorkerTally",
    "assemble_result",
    "drain_deadline",
    "main",
]

START_LEAD_S = 0.2
"""Lead between the generator being ready and its time zero (users wake and take slots)."""
DRAIN_GRACE_S = 10.0
"""After the schedule (plus the request timeout) ends, how long to wait for users to finish."""

Emit = Callable[[EngineMessage], None]


def now_ms() -> float:
    return time.time() * 1000.0


class Stopping:
    """Set on SIGTERM/SIGINT (the run stops the trial) or when the run's process died."""

    def __init__(self) -> None:
        self.requested = False

    def __bool__(self) -> bool:
        return self.requested

    def set(self) -> None:
        self.requested = True


class Generator(Protocol):
    """A warm load generator: one runner, trial after trial."""

    def drive(
        self, plan: TrialPlan, *, record: bool, emit: Emit, stopping: Stopping
    ) -> TrialLoadResult: ...

    def close(self) -> None: ...


@dataclass
class WorkerTally:
    """What one worker (a load-generator process) did in a trial."""

    counted: int
    """POST attempts Locust counted (for a lost worker: the rows it delivered)."""
    written: int
    late: int
    dropped: int
    cpu_s: float = 0.0


def assemble_result(
    plan: TrialPlan,
    *,
    zero_ms: float,
    ready_ms: float,
    ended_ms: float,
    tallies: dict[str, WorkerTally],
    lost: list[str],
    record: bool,
    interrupted: bool,
    users: int,
    cpu_s: float,
) -> TrialLoadResult:
    """The trial's result from each worker's tally (local runner and master alike)."""
    return TrialLoadResult(
        started_at_ms=zero_ms,
        ended_at_ms=ended_ms,
        warmup_until_ms=zero_ms + plan.scenario.warmup_s * 1000.0,
        ready_at_ms=ready_ms,
        requests_counted={name: tally.counted for name, tally in tallies.items()},
        rows_written={name: tally.written for name, tally in tallies.items()} if record else {},
        late_sends=sum(tally.late for tally in tallies.values()),
        dropped_sends=sum(tally.dropped for tally in tallies.values()),
        workers_lost=tuple(lost),
        interrupted=interrupted,
        users=users,
        cpu_s=cpu_s + sum(tally.cpu_s for tally in tallies.values()),
        workers=tuple(tallies),
    )


class ProgressMeter:
    """Emits a progress message about once a second; offered and achieved rates are measured
    over the same window (the last few seconds), so a stage boundary shows in both at once."""

    WINDOW_S = 3.0

    def __init__(
        self,
        schedule: Schedule,
        zero_ms: float,
        emit: Emit,
        *,
        clock_ms: Callable[[], float] = now_ms,
    ) -> None:
        self._schedule = schedule
        self._zero_ms = zero_ms
        self._emit = emit
        self._clock_ms = clock_ms
        self._window: deque[tuple[float, int]] = deque()  # (elapsed s, completed)
        self._last: float | None = None

    def tick(self, sent: int, errors: int) -> None:
        elapsed = (self._clock_ms() - self._zero_ms) / 1000.0
        if elapsed < 0 or (self._last is not None and elapsed - self._last < 1.0):
            return
        self._last = elapsed
        self._window.append((elapsed, sent))
        while len(self._window) > 1 and elapsed - self._window[0][0] > self.WINDOW_S:
            self._window.popleft()
        first_elapsed, first_sent = self._window[0]
        span = elapsed - first_elapsed
        offered = self._schedule.arrivals_until(elapsed) - self._schedule.arrivals_until(
            first_elapsed
        )
        progress = TrialProgress(
            elapsed_s=round(elapsed, 3),
            offered_rate_per_s=round(offered / span, 2) if span > 0 else 0.0,
            achieved_rate_per_s=round((sent - first_sent) / span, 2) if span > 0 else 0.0,
            sent=sent,
            errors=errors,
        )
        self._emit({"type": "progress", "progress": progress.to_wire()})


def seconds_in_flight(scenario: Scenario) -> float:
    """How long a user may be busy with one slot, for sizing the user pool."""
    seconds = max(1.0, 4 * scenario.work_ms / 1000.0)
    return max(seconds, 5.0) if scenario.poll_results else seconds


def drain_deadline(scenario: Scenario, zero_monotonic: float) -> float:
    """When to give up waiting for users after the schedule ended (monotonic)."""
    retry = scenario.client_retry
    per_request = (
        scenario.request_timeout_s * retry.max_attempts
        + retry.backoff_ms * (2 ** (retry.max_attempts - 1)) / 1000.0
    )
    if scenario.poll_results:
        per_request += scenario.collection_timeout_s
    return zero_monotonic + scenario.duration_s + per_request + DRAIN_GRACE_S


TRIAL_GC_THRESHOLDS = (50_000, 10, 10)
"""The cyclic garbage collector's thresholds in a load process (CPython's: 700, 10, 10)."""


def settle_garbage_collector() -> None:
    """Before a trial: move the long-lived objects (users, clients, greenlets) out of the
    collector's sight, and let it run rarely.

    At full speed a load process allocates thousands of short-lived containers per second
    (greenlet frames, responses); with CPython's default threshold the young generation was
    collected about 25 times a second at 2 ms each, some 10 % of the CPU per request
    (scripts/bench_loadgen.py, gc callbacks). Every 50,000 allocations it costs under 1 %; the
    memory held by cyclic garbage between two collections stays a few MB.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*TRIAL_GC_THRESHOLDS)


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, stopping: Stopping
) -> None:
    import gevent

    deadline = time.monotonic() + timeout_s
    while not condition():
        if stopping:
            raise RunError(f"stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise RunError(f"timed out after {timeout_s:g} s waiting for {what}")
        gevent.sleep(0.02)


def ensure_users(runner: Any, count: int, stopping: Stopping) -> None:
    """Have ``count`` users (only spawned when the count changes: users outlive trials)."""
    if runner.target_user_count == count and runner.user_count >= count:
        return
    runner.start(count, spawn_rate=max(100.0, count * 20.0))
    wait_until(lambda: runner.user_count >= count, 30.0, "the users to spawn", stopping)


class LocalGenerator:
    """One process, one Locust ``LocalRunner``; its users serve every trial of the run."""

    WORKER = "w0"

    def __init__(self, *, web_port: int | None = None, emit: Emit | None = None) -> None:
        from locust.env import Environment

        from loadtests.users import TrialContext, make_user_class

        self.context = TrialContext()
        self.environment = Environment(user_classes=[make_user_class(self.context)])
        self.environment.events.request.add_listener(self.context.count_request)
        self.runner = self.environment.create_local_runner()
        open_web_ui(self.environment, web_port, emit)

    def drive(
        self, plan: TrialPlan, *, record: bool, emit: Emit, stopping: Stopping
    ) -> TrialLoadResult:
        import gevent

        from loadtests.recorder import PartWriter, Recorder

        writer = PartWriter(plan.run_dir, plan.trial)
        recorder = Recorder(writer) if record else None
        self.context.prepare(trial_setup(plan, self.WORKER, recorder))
        users = users_needed(
            plan.scenario.peak_rate_per_s, seconds_in_flight=seconds_in_flight(plan.scenario)
        )
        ensure_users(self.runner, users, stopping)
        settle_garbage_collector()
        ready_ms = now_ms()
        zero_ms = max(plan.started_at_ms, ready_ms + START_LEAD_S * 1000.0)
        current = self.context.arm(zero_ms, index=0, count=1, seed=plan.seed)
        cpu_at_zero = time.process_time()
        meter = ProgressMeter(current.pacer.schedule, zero_ms, emit)
        deadline = drain_deadline(plan.scenario, current.pacer.zero_monotonic)
        while not current.finished and time.monotonic() < deadline:
            if stopping and not current.pacer.stopped:
                current.pacer.stop()
            if recorder is not None and recorder.due():
                recorder.flush()
            meter.tick(current.recorded, current.errors)
            gevent.sleep(0.05)
        ended_ms = now_ms()
        self.context.close()
        if recorder is not None:
            recorder.close()
        tally = WorkerTally(
            counted=current.counted,
            written=writer.written.get(self.WORKER, 0),
            late=current.pacer.late,
            dropped=current.dropped,
        )
        return assemble_result(
            plan,
            zero_ms=zero_ms,
            ready_ms=ready_ms,
            ended_ms=ended_ms,
            tallies={self.WORKER: tally},
            lost=[],
            record=record,
            interrupted=bool(stopping),
            users=self.runner.user_count,
            cpu_s=time.process_time() - cpu_at_zero,
        )

    def close(self) -> None:
        self.runner.quit()


def open_web_ui(environment: Any, port: int | None, emit: Emit | None) -> None:
    """Locust's web UI on ``environment``, for watching the trials (they are not started or
    stopped from it: the run drives them, and records the same rows either way)."""
    if port is None:
        return
    sys.argv = sys.argv[:1]  # the UI parses the command line as Locust's: ours is not
    environment.create_web_ui(host="127.0.0.1", port=port)
    if emit is not None:
        emit(
            {"type": "notice", "message": f"Locust web UI (for watching): http://127.0.0.1:{port}"}
        )


def trial_setup(plan: TrialPlan, worker: str, recorder: Any) -> Any:
    """The users' view of ``plan`` for ``worker`` (imports Locust through loadtests.users)."""
    from loadtests.users import TrialSetup

    return TrialSetup(
        run_id=plan.run_id,
        trial=plan.trial,
        variant=plan.variant,
        base_url=plan.base_url.rstrip("/"),
        scenario=plan.scenario,
        worker=worker,
        recorder=recorder,
    )


def on_termination(callback: Callable[[], None]) -> None:
    """Call ``callback`` on SIGTERM/SIGINT, or when the driving parent process has died (the
    child runs in its own session, so nothing else would stop an orphaned load)."""
    import gevent

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, callback)
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            gevent.sleep(0.5)
        callback()
        gevent.sleep(DRAIN_GRACE_S * 3)  # a graceful end first; then make sure we are gone
        os._exit(1)

    gevent.spawn(watch_parent)


def _emitter(stream: IO[str]) -> Emit:
    def emit(message: EngineMessage) -> None:
        stream.write(json.dumps(message) + "\n")
        stream.flush()

    return emit


def _jobs() -> Iterator[JobMessage]:
    """Job lines from stdin, read cooperatively (the master's heartbeats go on meanwhile)."""
    from gevent.fileobject import FileObjectPosix

    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    for line in stdin:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict) or message.get("type") == "quit":
            return
        if message.get("type") == "job":
            yield message  # type: ignore[misc]


def serve(generator_factory: Callable[[Emit, Stopping], Generator], emit: Emit) -> int:
    """Take jobs until stdin ends or says quit; one result (or error) per job."""
    stopping = Stopping()
    on_termination(stopping.set)
    try:
        generator = generator_factory(emit, stopping)
    except Exception as error:
        traceback.print_exc()
        emit({"type": "error", "message": f"{type(error).__name__}: {error}"})
        return 1
    emit({"type": "ready", "workers": len(getattr(generator, "names", [None]))})
    try:
        for job in _jobs():
            try:
                plan = TrialPlan.from_wire(job["plan"])
                result = generator.drive(
                    plan, record=bool(job["record"]), emit=emit, stopping=stopping
                )
            except Exception as error:
                traceback.print_exc()
                emit({"type": "error", "message": f"{type(error).__name__}: {error}"})
                return 1
            emit({"type": "result", "result": result.to_wire()})
    finally:
        generator.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    import locust  # noqa: F401  (first: monkey-patches the process for gevent)

    parser = argparse.ArgumentParser(prog="python -m loadtests.engine")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--expect-workers", type=int, default=0)
    parser.add_argument("--master-bind-host", default="*")
    parser.add_argument("--master-port", type=int, default=DEFAULT_MASTER_PORT)
    parser.add_argument("--web-port", type=int, default=None)
    args = parser.parse_args(argv)
    emit = _emitter(sys.stdout)
    if args.processes == 1 and args.expect_workers == 0:
        return serve(lambda emit, stopping: LocalGenerator(web_port=args.web_port, emit=emit), emit)
    from loadtests.distributed import MasterGenerator

    local_workers = args.processes if args.processes > 1 else 0

    def master(emit: Emit, stopping: Stopping) -> Generator:
        return MasterGenerator(
            local_workers=local_workers,
            expect_workers=args.expect_workers,
            bind_host=args.master_bind_host,
            port=args.master_port,
            emit=emit,
            stopping=stopping,
            web_port=args.web_port,
        )

    return serve(master, emit)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
