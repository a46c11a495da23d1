"""Drive one trial's load with Locust, in child processes, and account for every request.

:func:`drive_trial` never imports Locust into the calling process (Locust monkey-patches the
process for gevent at import): it starts a load-generator child, ``python -m loadtests.driver
engine``, which runs a Locust ``LocalRunner`` (``processes=1``) or a ``MasterRunner`` with
``processes`` local worker children (``python -m loadtests.driver worker``) or waits for
``expect_workers`` remote ones (``asyncbench worker``, i.e. :func:`run_worker`). The child
reads its job as JSON on stdin and writes JSON lines on stdout: ``progress`` about once a
second, then one ``result``. Its log goes to ``<run_dir>/logs/``.

Time zero: the load starts at ``plan.started_at_ms`` or, if the load generator is not ready by
then, as soon as it is; :attr:`TrialLoadResult.started_at_ms` is the zero actually used and
the outage window in the request bodies is relative to it. Give ``started_at_ms`` a lead of a
second or two (``time.time() * 1000 + 2000``) so both variants start on time.

Stopping: set ``stop`` (or press Ctrl-C while ``drive_trial`` runs): no further request is
sent, requests in flight complete, every row is flushed, and the result has
``interrupted=True``. Children run in their own session so a terminal's Ctrl-C reaches only
the parent, which then stops them in order.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from asyncbench.errors import RunError
from loadtests.scenario import Scenario

__all__ = [
    "DEFAULT_MASTER_PORT",
    "TrialLoadResult",
    "TrialPlan",
    "TrialProgress",
    "drive_trial",
    "run_worker",
]

DEFAULT_MASTER_PORT = 5557
WORKERS_CONNECT_TIMEOUT_S = 60.0
"""How long the master waits for its workers to connect (local processes or remote ones)."""
START_LEAD_S = 0.3
"""Minimum lead between the load generator being ready and its time zero."""
DRAIN_GRACE_S = 10.0
"""After the schedule (plus the request timeout) ends, how long to wait for users to finish."""


@dataclass(frozen=True)
class TrialPlan:
    """Everything a load generator needs to drive one trial."""

    run_id: str
    trial: int
    repetition: int
    variant: str
    base_url: str
    scenario: Scenario
    run_dir: Path
    started_at_ms: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "trial": self.trial,
            "repetition": self.repetition,
            "variant": self.variant,
            "base_url": self.base_url,
            "scenario": self.scenario.to_dict(),
            "run_dir": str(self.run_dir),
            "started_at_ms": self.started_at_ms,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialPlan:
        return cls(
            run_id=data["run_id"],
            trial=int(data["trial"]),
            repetition=int(data["repetition"]),
            variant=data["variant"],
            base_url=data["base_url"].rstrip("/"),
            scenario=Scenario.from_dict(data["scenario"], source="trial plan"),
            run_dir=Path(data["run_dir"]),
            started_at_ms=float(data["started_at_ms"]),
            seed=int(data["seed"]),
        )


@dataclass(frozen=True)
class TrialProgress:
    elapsed_s: float
    offered_rate_per_s: float
    achieved_rate_per_s: float
    sent: int
    errors: int


@dataclass(frozen=True)
class TrialLoadResult:
    started_at_ms: float
    ended_at_ms: float
    warmup_until_ms: float
    requests_counted: dict[str, int]
    rows_written: dict[str, int]
    late_sends: int
    interrupted: bool
    users: int = 0
    cpu_s: float = 0.0
    """CPU time the load-generator processes spent from time zero to the end (all workers)."""
    workers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_counted(self) -> int:
        return sum(self.requests_counted.values())

    @property
    def total_written(self) -> int:
        return sum(self.rows_written.values())


def drive_trial(
    plan: TrialPlan,
    *,
    processes: int = 1,
    expect_workers: int = 0,
    progress: Callable[[TrialProgress], None] | None = None,
    stop: threading.Event | None = None,
    record: bool = True,
) -> TrialLoadResult:
    """Run one trial's load; raise RunError when rows written differ from requests counted.

    ``record=False`` turns the recorder off (only for measuring its overhead): no rows are
    written and the loss check is skipped.
    """
    if processes < 1:
        raise RunError(f"--processes must be >= 1, not {processes}")
    if expect_workers < 0:
        raise RunError(f"expected workers must be >= 0, not {expect_workers}")
    job = {
        "plan": plan.to_dict(),
        "processes": processes,
        "expect_workers": expect_workers,
        "record": record,
    }
    log_dir = Path(plan.run_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"loadgen-{plan.trial:04d}.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "loadtests.driver", "engine"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
            text=True,
        )
    stop = stop if stop is not None else threading.Event()
    result = _follow(child, job, progress, stop, log_path)
    if record:
        _check_lossless(result, plan)
    return result


def _follow(
    child: subprocess.Popen[str],
    job: dict[str, Any],
    progress: Callable[[TrialProgress], None] | None,
    stop: threading.Event,
    log_path: Path,
) -> TrialLoadResult:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(job))
    child.stdin.close()
    finished = threading.Event()

    def forward_stop() -> None:
        while not finished.is_set():
            if stop.wait(0.1):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
                return

    threading.Thread(target=forward_stop, name="loadgen-stop", daemon=True).start()
    result: dict[str, Any] | None = None
    failure: str | None = None
    try:
        while True:
            try:
                line = child.stdout.readline()
            except KeyboardInterrupt:
                stop.set()  # first Ctrl-C: end the trial cleanly; the child flushes its rows
                continue
            if not line:
                break
            message = _parse(line)
            if message.get("type") == "progress" and progress is not None:
                progress(TrialProgress(**message["progress"]))
            elif message.get("type") == "result":
                result = message["result"]
            elif message.get("type") == "error":
                failure = message["message"]
        child.wait()
    finally:
        finished.set()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    if result is None:
        reason = failure or f"exited with code {child.returncode}"
        raise RunError(f"the load generator failed ({reason}); see {log_path}")
    return TrialLoadResult(
        started_at_ms=result["started_at_ms"],
        ended_at_ms=result["ended_at_ms"],
        warmup_until_ms=result["warmup_until_ms"],
        requests_counted=dict(result["requests_counted"]),
        rows_written=dict(result["rows_written"]),
        late_sends=int(result["late_sends"]),
        interrupted=bool(result["interrupted"] or stop.is_set()),
        users=int(result["users"]),
        cpu_s=float(result.get("cpu_s", 0.0)),
        workers=tuple(result["workers"]),
    )


def _parse(line: str) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return message if isinstance(message, dict) else {}


def _check_lossless(result: TrialLoadResult, plan: TrialPlan) -> None:
    workers = sorted(set(result.requests_counted) | set(result.rows_written))
    lost = [
        f"{worker}: {result.rows_written.get(worker, 0)} rows for "
        f"{result.requests_counted.get(worker, 0)} requests"
        for worker in workers
        if result.rows_written.get(worker, 0) != result.requests_counted.get(worker, 0)
    ]
    if lost:
        raise RunError(
            f"trial {plan.trial} ({plan.variant}) lost client records ({'; '.join(lost)}); "
            f"see {Path(plan.run_dir) / 'logs'}"
        )


def run_worker(master_host: str, master_port: int = DEFAULT_MASTER_PORT) -> int:
    """Serve the trials of runs on another machine as a load-generator worker until Ctrl-C.

    Each trial gets a fresh worker process (a Locust worker runner does not reconnect cleanly
    after its master quit); this process only restarts them and never imports Locust.
    """
    command = [sys.executable, "-m", "loadtests.driver", "worker"]
    command += ["--master-host", master_host, "--master-port", str(master_port)]
    try:
        while True:
            started = time.monotonic()
            code = subprocess.call(command)
            if code != 0 and time.monotonic() - started < 1.0:
                time.sleep(1.0)  # no master yet (or a broken setup): do not spin
    except KeyboardInterrupt:
        return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.driver")
    sub = parser.add_subparsers(dest="role", required=True)
    sub.add_parser("engine", help="run one trial's load (job as JSON on stdin)")
    worker = sub.add_parser("worker", help="a worker process for one trial")
    worker.add_argument("--master-host", default="127.0.0.1")
    worker.add_argument("--master-port", type=int, default=DEFAULT_MASTER_PORT)
    args = parser.parse_args(argv)
    if args.role == "engine":
        return _run_engine(json.loads(sys.stdin.read()), _emit(sys.stdout))
    return _serve_worker(args.master_host, args.master_port)


def _emit(stream: IO[str]) -> Callable[[dict[str, Any]], None]:
    def emit(message: dict[str, Any]) -> None:
        stream.write(json.dumps(message) + "\n")
        stream.flush()

    return emit


# --- inside the load-generator processes: everything below imports Locust lazily ------------

_PLAN = "asyncbench_plan"
_GO = "asyncbench_go"
_STOP = "asyncbench_stop"
_ROWS = "asyncbench_rows"
_DONE = "asyncbench_done"
_OK_OUTCOMES = ("accepted", "succeeded")

Emit = Callable[[dict[str, Any]], None]


def _now_ms() -> float:
    return time.time() * 1000.0


class _ProgressMeter:
    """Turns cumulative counts into a ``progress`` message about once a second."""

    def __init__(self, scenario: Scenario, zero_ms: float, emit: Emit) -> None:
        from loadtests.pacing import Schedule

        self._schedule = Schedule(scenario)
        self._zero_ms = zero_ms
        self._emit = emit
        self._window: deque[tuple[float, int]] = deque()
        self._last = 0.0

    def tick(self, sent: int, errors: int) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            return
        self._last = now
        self._window.append((now, sent))
        while len(self._window) > 1 and now - self._window[0][0] > 3.0:
            self._window.popleft()
        first_time, first_sent = self._window[0]
        span = now - first_time
        elapsed = (_now_ms() - self._zero_ms) / 1000.0
        progress = TrialProgress(
            elapsed_s=round(elapsed, 3),
            offered_rate_per_s=self._schedule.rate_at(elapsed),
            achieved_rate_per_s=round((sent - first_sent) / span, 2) if span > 0 else 0.0,
            sent=sent,
            errors=errors,
        )
        self._emit({"type": "progress", "progress": asdict(progress)})


def _on_termination(callback: Callable[[], None]) -> None:
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


def _seconds_in_flight(scenario: Scenario) -> float:
    """How long a user may be busy with one slot, for sizing the user pool."""
    seconds = max(1.0, 4 * scenario.work_ms / 1000.0)
    return max(seconds, 5.0) if scenario.poll_results else seconds


def _drain_deadline(scenario: Scenario, zero_monotonic: float) -> float:
    """When to give up waiting for users after the schedule ended (monotonic)."""
    retry = scenario.client_retry
    per_request = (
        scenario.request_timeout_s * retry.max_attempts
        + retry.backoff_ms * (2 ** (retry.max_attempts - 1)) / 1000.0
    )
    if scenario.poll_results:
        per_request += scenario.collection_timeout_s
    return zero_monotonic + scenario.duration_s + per_request + DRAIN_GRACE_S


def _context(plan: TrialPlan, worker: str, recorder: Any) -> Any:
    from loadtests.users import TrialContext

    return TrialContext(
        run_id=plan.run_id,
        trial=plan.trial,
        variant=plan.variant,
        base_url=plan.base_url.rstrip("/"),
        scenario=plan.scenario,
        worker=worker,
        recorder=recorder,
    )


def _run_engine(job: Mapping[str, Any], emit: Emit) -> int:
    """The load-generator child: one trial, result as the last stdout line."""
    import locust  # noqa: F401  (first: monkey-patches the process for gevent)

    try:
        plan = TrialPlan.from_dict(job["plan"])
        processes = int(job["processes"])
        expect_workers = int(job["expect_workers"])
        record = bool(job["record"])
        if processes == 1 and expect_workers == 0:
            result = _drive_local(plan, record, emit)
        else:
            local_workers = processes if processes > 1 else 0
            result = _drive_master(plan, local_workers, expect_workers, record, emit)
    except Exception as error:
        traceback.print_exc()
        emit({"type": "error", "message": f"{type(error).__name__}: {error}"})
        return 1
    emit({"type": "result", "result": result})
    return 0


def _settle_garbage_collector() -> None:
    """Move the long-lived objects (users, clients, greenlets) out of the collector's sight.

    The recorder keeps thousands of rows alive between flushes; without this every full
    collection would also walk the whole user pool again and again.
    """
    gc.collect()
    gc.freeze()


def _wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, stopping: list[bool]
) -> None:
    import gevent

    deadline = time.monotonic() + timeout_s
    while not condition():
        if stopping:
            raise RunError(f"stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise RunError(f"timed out after {timeout_s:g} s waiting for {what}")
        gevent.sleep(0.05)


def _drive_local(plan: TrialPlan, record: bool, emit: Emit) -> dict[str, Any]:
    import gevent
    from locust.env import Environment

    from loadtests.pacing import users_needed
    from loadtests.recorder import PartWriter, Recorder
    from loadtests.users import make_user_class

    worker = "w0"
    writer = PartWriter(plan.run_dir, plan.trial)
    recorder = Recorder(writer) if record else None
    context = _context(plan, worker, recorder)
    environment = Environment(user_classes=[make_user_class(context)])
    environment.events.request.add_listener(context.count_request)
    runner = environment.create_local_runner()
    stopping: list[bool] = []
    _on_termination(lambda: stopping.append(True))
    user_count = users_needed(
        plan.scenario.peak_rate_per_s, seconds_in_flight=_seconds_in_flight(plan.scenario)
    )
    runner.start(user_count, spawn_rate=max(100.0, user_count * 20.0))
    _wait_until(lambda: runner.user_count >= user_count, 30.0, "the users to spawn", stopping)
    _settle_garbage_collector()
    zero_ms = max(plan.started_at_ms, _now_ms() + START_LEAD_S * 1000.0)
    context.arm(zero_ms, index=0, count=1, seed=plan.seed)
    cpu_at_zero = time.process_time()
    meter = _ProgressMeter(plan.scenario, zero_ms, emit)
    deadline = _drain_deadline(plan.scenario, context.pacer.zero_monotonic)
    while context.finished_users < user_count and time.monotonic() < deadline:
        if stopping and not context.pacer.stopped:
            context.pacer.stop()
        if recorder is not None and recorder.due():
            recorder.flush()
        meter.tick(context.recorded, context.errors)
        gevent.sleep(0.05)
    ended_ms = _now_ms()
    runner.quit()
    if recorder is not None:
        recorder.flush()
    return {
        "started_at_ms": zero_ms,
        "ended_at_ms": ended_ms,
        "warmup_until_ms": zero_ms + plan.scenario.warmup_s * 1000.0,
        "requests_counted": {worker: context.counted},
        "rows_written": dict(writer.written) if record else {},
        "late_sends": context.pacer.late,
        "interrupted": bool(stopping),
        "users": user_count,
        "workers": [worker],
        "cpu_s": time.process_time() - cpu_at_zero,
    }


def _drive_master(
    plan: TrialPlan, local_workers: int, expect_workers: int, record: bool, emit: Emit
) -> dict[str, Any]:
    import gevent
    from locust.env import Environment

    from loadtests.pacing import users_needed
    from loadtests.recorder import PartWriter, Recorder, columns_to_rows
    from loadtests.users import make_user_class

    writer = PartWriter(plan.run_dir, plan.trial)
    recorder = Recorder(writer) if record else None
    # The master runs no users; it needs the class only to dispatch users by class name.
    environment = Environment(user_classes=[make_user_class(_context(plan, "master", None))])
    remote = expect_workers > 0
    port = DEFAULT_MASTER_PORT if remote else _free_port()
    runner = environment.create_master_runner(
        master_bind_host="*" if remote else "127.0.0.1", master_bind_port=port
    )
    received: dict[str, int] = defaultdict(int)
    errors: list[int] = [0]
    done: dict[str, dict[str, Any]] = {}

    def on_rows(environment: Any, msg: Any, **_: Any) -> None:
        rows = columns_to_rows(msg.data["columns"])
        received[msg.data["worker"]] += len(rows)
        errors[0] += sum(1 for row in rows if row["outcome"] not in _OK_OUTCOMES)
        if recorder is not None:
            recorder.extend(msg.data["worker"], rows)

    def on_done(environment: Any, msg: Any, **_: Any) -> None:
        done[msg.data["worker"]] = msg.data

    runner.register_message(_ROWS, on_rows)
    runner.register_message(_DONE, on_done)
    stopping: list[bool] = []
    _on_termination(lambda: stopping.append(True))
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "loadtests.driver", "worker", "--master-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(local_workers)
    ]
    try:
        total = local_workers + expect_workers

        def workers_ready() -> bool:
            exited = [child.returncode for child in children if child.poll() is not None]
            if exited:
                raise RunError(f"a local worker process exited (code {exited[0]}) before the load")
            return bool(runner.worker_count >= total)

        _wait_until(
            workers_ready, WORKERS_CONNECT_TIMEOUT_S, f"{total} workers to connect", stopping
        )
        # Every connected worker takes part (Locust spreads users over all of them), so a
        # remote worker that connected beyond the expected number gets its share of the slots.
        nodes = sorted(runner.clients.all, key=lambda node: node.id)
        total = len(nodes)
        names = [f"w{index}" for index in range(total)]
        per_worker = users_needed(
            plan.scenario.peak_rate_per_s,
            processes=total,
            seconds_in_flight=_seconds_in_flight(plan.scenario),
        )
        for index, node in enumerate(nodes):
            job = {"plan": plan.to_dict(), "index": index, "count": total, "record": record}
            runner.send_message(_PLAN, {**job, "worker": names[index]}, client_id=node.id)
        runner.start(per_worker * total, spawn_rate=max(100.0, per_worker * total * 20.0))
        _wait_until(
            lambda: runner.user_count >= per_worker * total, 30.0, "users to spawn", stopping
        )
        zero_ms = max(plan.started_at_ms, _now_ms() + max(START_LEAD_S, 0.5) * 1000.0)
        runner.send_message(_GO, {"zero_ms": zero_ms})
        cpu_at_go = time.process_time()
        zero_monotonic = time.monotonic() + (zero_ms - _now_ms()) / 1000.0
        deadline = _drain_deadline(plan.scenario, zero_monotonic) + 5.0
        meter = _ProgressMeter(plan.scenario, zero_ms, emit)
        stop_sent = False
        while len(done) < total and time.monotonic() < deadline:
            if stopping and not stop_sent:
                runner.send_message(_STOP, {})
                stop_sent = True
            if recorder is not None and recorder.due():
                recorder.flush()
            meter.tick(sum(received.values()), errors[0])
            gevent.sleep(0.05)
        ended_ms = _now_ms()
        runner.quit()
        if recorder is not None:
            recorder.flush()
        master_cpu_s = time.process_time() - cpu_at_go
    finally:
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    missing = [name for name in names if name not in done]
    if missing:
        print(f"workers {', '.join(missing)} never reported the end of the trial", file=sys.stderr)
    return {
        "started_at_ms": zero_ms,
        "ended_at_ms": ended_ms,
        "warmup_until_ms": zero_ms + plan.scenario.warmup_s * 1000.0,
        # A worker that never reported counts as -1 requests: the loss check then fails loudly.
        "requests_counted": {name: int(done.get(name, {}).get("counted", -1)) for name in names},
        "rows_written": {name: writer.written.get(name, 0) for name in names} if record else {},
        "late_sends": sum(int(report.get("late", 0)) for report in done.values()),
        "interrupted": bool(stopping),
        "users": per_worker * total,
        "workers": names,
        "cpu_s": master_cpu_s + sum(float(report.get("cpu_s", 0.0)) for report in done.values()),
    }


def _serve_worker(master_host: str, master_port: int) -> int:
    """Be a worker for one trial; 1 when no master answered."""
    import locust  # noqa: F401  (first: monkey-patches the process for gevent)

    try:
        _serve_one_trial(master_host, master_port)
    except ConnectionError:
        print(f"no master at {master_host}:{master_port}", file=sys.stderr)
        return 1
    return 0


def _serve_one_trial(master_host: str, master_port: int) -> None:
    import gevent
    from locust.env import Environment

    from loadtests.recorder import Recorder, rows_to_columns
    from loadtests.users import TrialContext, make_user_class

    context = TrialContext.pending()
    environment = Environment(user_classes=[make_user_class(context)])
    environment.events.request.add_listener(context.count_request)
    runner = environment.create_worker_runner(master_host, master_port)
    assignment: dict[str, Any] = {}

    def forward(worker: str, rows: list[dict[str, Any]]) -> None:
        runner.send_message(_ROWS, {"worker": worker, "columns": rows_to_columns(rows)})

    def on_plan(environment: Any, msg: Any, **_: Any) -> None:
        plan = TrialPlan.from_dict(msg.data["plan"])
        assignment.update(plan=plan, index=msg.data["index"], count=msg.data["count"])
        context.configure(
            run_id=plan.run_id,
            trial=plan.trial,
            variant=plan.variant,
            base_url=plan.base_url,
            scenario=plan.scenario,
            worker=msg.data["worker"],
            recorder=Recorder(forward) if msg.data["record"] else None,
        )

    def on_go(environment: Any, msg: Any, **_: Any) -> None:
        plan = assignment["plan"]
        context.arm(
            msg.data["zero_ms"],
            index=assignment["index"],
            count=assignment["count"],
            seed=plan.seed,
        )
        assignment["cpu_at_go"] = time.process_time()
        gevent.spawn(finish)

    def finish() -> None:
        users = runner.user_count
        while context.finished_users < users:
            if context.recorder is not None and context.recorder.due():
                context.recorder.flush()
            gevent.sleep(0.05)
        if context.recorder is not None:
            context.recorder.flush()
        # Same connection as the rows: the master receives every batch before this message.
        late = context.pacer.late if context.pacer is not None else 0
        report = {
            "counted": context.counted,
            "rows": context.recorded,
            "late": late,
            "cpu_s": time.process_time() - assignment["cpu_at_go"],
        }
        runner.send_message(_DONE, {"worker": context.worker, **report})

    def on_stop(environment: Any, msg: Any, **_: Any) -> None:
        if context.pacer is not None:
            context.pacer.stop()

    runner.register_message(_PLAN, on_plan)
    runner.register_message(_GO, on_go)
    runner.register_message(_STOP, on_stop)
    runner.greenlet.join()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(_main())
