"""The run's side of the load generator: starts it, hands it trials, follows it. No Locust here.

Locust monkey-patches a process for gevent when imported, so the load runs in a child process,
the engine (``python -m loadtests.engine``, see ``loadtests.engine``), started once per run by
:class:`LoadGenerator` and kept warm across the run's trials. It runs a Locust ``LocalRunner``
(``processes=1``) or a ``MasterRunner`` with ``processes`` local worker children or
``expect_workers`` remote ones (``asyncbench worker``, i.e. :func:`run_worker`). Parent and child
speak the JSON lines of ``loadtests.wire``; the child's log goes to ``<run_dir>/logs/``.

Stopping: set ``stop`` (or press Ctrl-C while a trial runs): no further request is sent,
requests in flight complete, every row is flushed, and the result has ``interrupted=True``.
The child runs in its own session so a terminal's Ctrl-C reaches only the parent, which then
stops it in order.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from asyncbench.errors import RunError
from loadtests.lifeline import parent_arguments
from loadtests.wire import (
    DEFAULT_MASTER_PORT,
    JobMessage,
    TrialLoadResult,
    TrialPlan,
    TrialProgress,
    parse_engine_message,
)

__all__ = [
    "DEFAULT_MASTER_PORT",
    "LoadGenerator",
    "TrialLoadResult",
    "TrialPlan",
    "TrialProgress",
    "drive_trial",
    "open_generator",
    "run_worker",
]

READY_TIMEOUT_S = 120.0
"""How long to wait for the engine to be ready (process start, remote workers connecting)."""


class LoadGenerator:
    """The engine child of one run: started on the first trial, reused for the others."""

    def __init__(
        self,
        log_dir: Path,
        *,
        processes: int = 1,
        expect_workers: int = 0,
        master_bind_host: str = "*",
        master_port: int = DEFAULT_MASTER_PORT,
        web_port: int | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        if processes < 1:
            raise RunError(f"--processes must be >= 1, not {processes}")
        if expect_workers < 0:
            raise RunError(f"expected workers must be >= 0, not {expect_workers}")
        self.log_dir = Path(log_dir)
        self.command = [
            sys.executable, "-m", "loadtests.engine",
            "--processes", str(processes), "--expect-workers", str(expect_workers),
            "--master-bind-host", master_bind_host, "--master-port", str(master_port),
        ]  # fmt: skip
        if web_port is not None:
            self.command += ["--web-port", str(web_port)]
        self.notice = notice or (lambda text: print(text, file=sys.stderr))
        self.child: subprocess.Popen[str] | None = None
        self.log_path = self.log_dir / "loadgen.log"

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self, stop: threading.Event) -> subprocess.Popen[str]:
        if self.child is not None and self.child.poll() is None:
            return self.child
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.child = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
                text=True,
            )
        self._follow(self.child, None, stop, until="ready")
        return self.child

    def drive(
        self,
        plan: TrialPlan,
        *,
        progress: Callable[[TrialProgress], None] | None = None,
        stop: threading.Event | None = None,
        record: bool = True,
    ) -> TrialLoadResult:
        """Run one trial's load; raise RunError when rows written differ from requests counted.

        ``record=False`` turns the recorder off (only for measuring its overhead): no rows are
        written and the loss check is skipped.
        """
        stop = stop if stop is not None else threading.Event()
        child = self._start(stop)
        job: JobMessage = {"type": "job", "plan": plan.to_wire(), "record": record}
        assert child.stdin is not None
        try:
            child.stdin.write(json.dumps(job) + "\n")
            child.stdin.flush()
        except BrokenPipeError:
            raise RunError(f"the load generator has exited; see {self.log_path}") from None
        result = self._follow(child, progress, stop, until="result")
        assert result is not None
        if stop.is_set() and not result.interrupted:
            result = _interrupted(result)
        if record:
            _check_lossless(result, plan, self.log_path)
        return result

    def _follow(
        self,
        child: subprocess.Popen[str],
        progress: Callable[[TrialProgress], None] | None,
        stop: threading.Event,
        *,
        until: str,
    ) -> TrialLoadResult | None:
        """Read the child's messages until ``until`` arrives; forward ``stop`` as SIGTERM."""
        assert child.stdout is not None
        finished = threading.Event()

        def forward_stop() -> None:
            while not finished.is_set():
                if stop.wait(0.1):
                    if child.poll() is None:
                        child.send_signal(signal.SIGTERM)
                    return

        threading.Thread(target=forward_stop, name="loadgen-stop", daemon=True).start()
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
                try:
                    message = parse_engine_message(json.loads(line))
                except json.JSONDecodeError:
                    continue
                if message is None:
                    continue
                if message["type"] == "progress" and progress is not None:
                    progress(TrialProgress.from_wire(message["progress"]))
                elif message["type"] == "notice":
                    self.notice(message["message"])
                elif message["type"] == "error":
                    failure = message["message"]
                    break
                elif message["type"] == "ready" and until == "ready":
                    return None
                elif message["type"] == "result":
                    return TrialLoadResult.from_wire(message["result"])
        finally:
            finished.set()
        self.close()
        reason = failure or f"exited with code {child.returncode}"
        raise RunError(f"the load generator failed ({reason}); see {self.log_path}")

    def close(self) -> None:
        """Let the engine finish (it quits its runner and workers), then make sure it is gone."""
        child, self.child = self.child, None
        if child is None:
            return
        try:
            if child.stdin is not None and child.poll() is None:
                child.stdin.write(json.dumps({"type": "quit"}) + "\n")
                child.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def open_generator(log_dir: Path, **options: object) -> LoadGenerator:
    """A :class:`LoadGenerator` for one run (use it as a context manager)."""
    return LoadGenerator(log_dir, **options)  # type: ignore[arg-type]


def drive_trial(
    plan: TrialPlan,
    *,
    processes: int = 1,
    expect_workers: int = 0,
    progress: Callable[[TrialProgress], None] | None = None,
    stop: threading.Event | None = None,
    record: bool = True,
) -> TrialLoadResult:
    """One trial with a generator of its own (started and stopped around it)."""
    with LoadGenerator(
        Path(plan.run_dir) / "logs", processes=processes, expect_workers=expect_workers
    ) as generator:
        return generator.drive(plan, progress=progress, stop=stop, record=record)


def _interrupted(result: TrialLoadResult) -> TrialLoadResult:
    from dataclasses import replace

    return replace(result, interrupted=True)


def _check_lossless(result: TrialLoadResult, plan: TrialPlan, log_path: Path) -> None:
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
            f"see {log_path}"
        )


def run_worker(master_host: str, master_port: int = DEFAULT_MASTER_PORT) -> int:
    """Serve runs on another machine as a load-generator worker until Ctrl-C.

    Each run gets a fresh worker process (a Locust worker runner does not reconnect cleanly
    after its master quit); this process only restarts them and never imports Locust. A worker
    the master refuses (another asyncbench version) ends this command with its line.
    """
    from loadtests.distributed import EXIT_REFUSED

    # The child dies with this process, even when it is killed outright (SIGKILL).
    command = [sys.executable, "-m", "loadtests.distributed", *parent_arguments()]
    command += ["--master-host", master_host, "--master-port", str(master_port)]
    # Locust's worker waits for its master without a word: say what it waits for.
    print(
        f"asyncbench worker: waiting for a master at {master_host}:{master_port} "
        "(`asyncbench run --expect-workers N` there); Ctrl-C stops",
        flush=True,
    )
    try:
        while True:
            started = time.monotonic()
            code = subprocess.call(command)
            if code == EXIT_REFUSED:
                return code
            if code != 0 and time.monotonic() - started < 1.0:
                time.sleep(1.0)  # no master yet (or a broken setup): do not spin
    except KeyboardInterrupt:
        return 0
