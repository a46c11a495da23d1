"""Lambda, locally: execution environments as separate processes, one event at a time each.

A :class:`LocalFunction` keeps a pool of environments (processes forked from a fork server
that has the SDK imported; see :mod:`stack.local.awslambda.worker`). An invocation takes an idle
environment or starts a new one (a cold start: the handler module is imported and the import
timed as InitDuration); when ``concurrency`` environments are all busy the call is throttled
at once, like Lambda's 429 TooManyRequestsException. A handler over its timeout is killed and
its environment discarded (the next invocation starts a new one). A handler that fails to
import fails every invocation with ``Runtime.ImportModuleError`` and leaves everything else
serving. An environment that dies mid-invocation (SIGKILL, ``sys.exit``) fails that
invocation with ``Runtime.ExitError``.

What CloudWatch would record goes to the :class:`~stack.local.metrics.MetricsLog`:
Invocations, Duration, InitDuration, ColdStart, Errors, Throttles, Timeouts,
ConcurrentExecutions (busy environments when an invocation starts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from asyncbench.paths import PROJECT_ROOT
from stack.local.awslambda.worker import PRELOAD_MODULES, serve_environment
from stack.local.metrics import MetricsLog

__all__ = ["INIT_TIMEOUT_S", "LOCAL_ACCOUNT", "Invocation", "LocalFunction"]

# Lambda gives the init phase 10 s; the local interpreter start-up (a few hundred ms, more on a
# loaded 2-core machine) comes on top, so the runtime allows a little more before giving up.
INIT_TIMEOUT_S = 10.0
INTERPRETER_START_ALLOWANCE_S = 5.0

# Environments are forked from one fork server per stage process (started on first use), with
# the SDK already imported: see stack.local.awslambda.worker. Environments never share state: each
# is a fresh fork, and the fork server itself never runs a handler.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD_MODULES)


class _EnvironmentPopen(popen_forkserver.Popen):
    """multiprocessing's fork-server launch, minus re-importing the parent's ``__main__``.

    A Lambda environment must not run whatever script started the stage (pytest, a benchmark,
    ``python -c``); stdlib children do, to find pickled functions defined there. Our target
    lives in an importable module, so the main-module keys are dropped from the preparation
    data (the rest of ``_launch`` is the stdlib's, unchanged since Python 3.4).
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buffer = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buffer)
            reduction.dump(process_obj, buffer)
        finally:
            context.set_spawning_popen(None)
        passed_fds = self._fds  # type: ignore[attr-defined]
        self.sentinel, write_end = forkserver.connect_to_new_process(passed_fds)
        parent_write_end = os.dup(write_end)
        close_fds = util.close_fds  # type: ignore[attr-defined]
        self.finalizer = util.Finalize(self, close_fds, (parent_write_end, self.sentinel))
        with open(write_end, "wb", closefd=True) as stream:
            stream.write(buffer.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _EnvironmentProcess(context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _EnvironmentPopen(process_obj)


PYTHON_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
LOCAL_ACCOUNT = "000000000000"

Status = Literal["ok", "error", "timeout", "throttled"]


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invoke, as the Lambda Invoke API would report it."""

    request_id: str
    status: Status
    payload: Any
    """The handler's return value (JSON round-tripped) when ok; the error object
    (errorType, errorMessage, stackTrace) when the function failed; None otherwise."""
    error_type: str | None
    error_message: str | None
    duration_ms: float
    init_duration_ms: float | None
    """Set when this invocation started a new environment."""
    cold_start: bool


class _EnvironmentDied(Exception):
    """The environment process exited (or closed its pipe) while we waited for it."""


class _Environment:
    """One environment process and the connection to it."""

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.pid: int = process.pid or 0
        self.generation = 0
        """The function's configuration generation the environment was started with."""

    def alive(self) -> bool:
        return self.process.exitcode is None and self.process.is_alive()

    def send(self, message: Mapping[str, Any]) -> None:
        try:
            self.connection.send_bytes(json.dumps(message, separators=(",", ":")).encode())
        except (OSError, ValueError) as error:
            raise _EnvironmentDied(str(error)) from None

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the deadline (time.monotonic) passes first."""
        try:
            if not self.connection.poll(max(0.0, deadline - time.monotonic())):
                return None
            message: dict[str, Any] = json.loads(self.connection.recv_bytes())
        except (EOFError, OSError) as error:
            raise _EnvironmentDied(str(error) or "closed its connection") from None
        return message

    def exit_description(self) -> str:
        """How the process ended, in the words of Lambda's Runtime.ExitError."""
        self.process.join(timeout=2)
        if self.process.exitcode is None:
            self.kill()
        code = self.process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG").lower()
            return f"signal: {'killed' if name == 'kill' else name}"
        return f"exit status {code}"

    def kill(self) -> None:
        with contextlib.suppress(ValueError):  # already closed
            if self.process.exitcode is None:
                self.process.kill()
            self.process.join(timeout=5)
        with contextlib.suppress(OSError):
            self.connection.close()


class LocalFunction:
    """A Lambda function on this machine: environments, concurrency cap, timeout, metrics."""

    def __init__(
        self,
        *,
        name: str,
        variant: str,
        handler: str,
        environment: Mapping[str, str],
        timeout_s: float,
        memory_mb: int,
        concurrency: int,
        metrics: MetricsLog | None = None,
        code_dir: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        """``code_dir`` is the task root (default: the checkout, which holds ``processor/``);
        ``log_path`` receives the environments' output (default: this process's stderr)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.name = name
        self.variant = variant
        self.handler = handler
        self.timeout_s = float(timeout_s)
        self.memory_mb = memory_mb
        self.concurrency = concurrency
        self.arn = f"arn:aws:lambda:local:{LOCAL_ACCOUNT}:function:{name}"
        self._metrics = metrics
        self._code_dir = Path(code_dir) if code_dir is not None else PROJECT_ROOT
        self._environment = dict(environment)
        self._log_path: str | None = None
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log_path = str(log_path)
        self._lock = threading.Lock()
        self._idle: list[_Environment] = []
        self._busy: set[_Environment] = set()
        self._starting = 0  # slots reserved by cold starts in progress
        self._closed = False
        self._generation = 0  # bumped by reconfigure: older environments are retired

    # ----------------------------------------------------------------------------- public
    @property
    def environment_pids(self) -> list[int]:
        """PIDs of the live environments, busy and idle (a reliability test kills one)."""
        with self._lock:
            return sorted(env.pid for env in [*self._idle, *self._busy])

    @property
    def busy_count(self) -> int:
        with self._lock:
            return len(self._busy) + self._starting

    def invoke(self, event: Mapping[str, Any]) -> Invocation:
        """Run the handler on ``event`` in an environment; blocking and thread-safe."""
        request_id = str(uuid.uuid4())
        environment: _Environment | None = None
        with self._lock:
            if self._closed:
                return self._failed(
                    request_id, "ServiceException", f"function {self.name} is stopped"
                )
            if self._idle:
                environment = self._idle.pop()
                self._busy.add(environment)
            elif len(self._idle) + len(self._busy) + self._starting < self.concurrency:
                self._starting += 1
            else:
                return self._throttled(request_id)
            concurrent = len(self._busy) + self._starting
        self._emit("ConcurrentExecutions", concurrent, "Count", request_id=request_id)
        self._emit("Invocations", 1, "Count", request_id=request_id)

        init_duration_ms: float | None = None
        if environment is None:
            started = self._cold_start(request_id)
            if isinstance(started, Invocation):
                return started
            environment, init_duration_ms = started
        try:
            return self._run(environment, request_id, event, init_duration_ms)
        finally:
            with self._lock:
                self._busy.discard(environment)
                alive = environment.alive() and environment.generation == self._generation
                if alive and not self._closed:
                    self._idle.append(environment)
            if not alive or self._closed:
                environment.kill()

    @property
    def environment(self) -> dict[str, str]:
        """The variables the function's environments get (beside Lambda's own)."""
        return dict(self._environment)

    def reconfigure(
        self,
        *,
        environment: Mapping[str, str] | None = None,
        memory_mb: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        """UpdateFunctionConfiguration / PutFunctionConcurrency, live: invocations after this
        call run in environments started with the new settings (idle ones are stopped, busy
        ones finish their invocation and are stopped then)."""
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        with self._lock:
            if concurrency is not None:
                self.concurrency = concurrency
            if environment is None and memory_mb is None:
                return
            if environment is not None:
                self._environment = dict(environment)
            if memory_mb is not None:
                self.memory_mb = memory_mb
            self._generation += 1
            retired, self._idle = self._idle, []
        for old in retired:
            old.kill()

    def close(self) -> None:
        """Stop every environment process (busy ones fail their invocation)."""
        with self._lock:
            self._closed = True
            environments = [*self._idle, *self._busy]
            self._idle.clear()
        for environment in environments:
            environment.kill()

    def __enter__(self) -> LocalFunction:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- private
    def _worker_environment(self) -> dict[str, str]:
        code_dir = str(self._code_dir)
        region = self._environment.get("AWS_REGION") or self._environment.get(
            "AWS_DEFAULT_REGION", "us-east-1"
        )
        stream = time.strftime("%Y/%m/%d") + f"/[$LATEST]{secrets.token_hex(16)}"
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # Never reach for EC2 instance metadata: the local stage talks to 127.0.0.1 only.
            "AWS_EC2_METADATA_DISABLED": "true",
            **self._environment,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{PYTHON_RUNTIME}",
            "LAMBDA_TASK_ROOT": code_dir,
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
            "_HANDLER": self.handler,
            "ASYNCBENCH_FUNCTION_ARN": self.arn,
        }

    def _cold_start(self, request_id: str) -> tuple[_Environment, float] | Invocation:
        """Start an environment and run its init phase; an Invocation when init failed."""
        generation = self._generation
        ours, theirs = _CONTEXT.Pipe(duplex=True)
        process = _EnvironmentProcess(
            target=serve_environment,
            args=(theirs, self._worker_environment(), str(self._code_dir), self._log_path),
            name=f"lambda:{self.name}",
            daemon=True,
        )
        process.start()
        theirs.close()
        environment = _Environment(process, ours)
        environment.generation = generation
        failure: Invocation | None = None
        init_ms: float | None = None
        try:
            message = environment.receive(
                time.monotonic() + INIT_TIMEOUT_S + INTERPRETER_START_ALLOWANCE_S
            )
        except _EnvironmentDied:
            description = environment.exit_description()
            failure = self._failed(
                request_id,
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited during init: {description}",
            )
            message = {}
        if message is None:
            failure = self._timed_out(request_id, INIT_TIMEOUT_S, phase="init")
        elif message.get("type") == "init_error":
            init_ms = float(message["init_duration_ms"])
            error = message["error"]
            failure = self._failed(request_id, error["errorType"], error["errorMessage"], error)
        elif message.get("type") == "ready":
            init_ms = float(message["init_duration_ms"])

        with self._lock:
            self._starting -= 1
            if failure is None and not self._closed:
                self._busy.add(environment)
        self._emit("ColdStart", 1, "Count", request_id=request_id)
        if init_ms is not None:
            self._emit("InitDuration", init_ms, "Milliseconds", request_id=request_id)
        if failure is not None or self._closed:
            # AWS discards an environment whose init failed; the next invoke tries init again.
            environment.kill()
            if failure is None:
                failure = self._failed(request_id, "ServiceException", "function stopped")
            return _with_cold_start(failure, init_ms)
        assert init_ms is not None
        return environment, init_ms

    def _run(
        self,
        environment: _Environment,
        request_id: str,
        event: Mapping[str, Any],
        init_duration_ms: float | None,
    ) -> Invocation:
        deadline_ms = int(time.time() * 1000 + self.timeout_s * 1000)
        deadline = time.monotonic() + self.timeout_s
        try:
            environment.send({"request_id": request_id, "event": event, "deadline_ms": deadline_ms})
            message = environment.receive(deadline)
        except _EnvironmentDied:
            environment.kill()
            result = self._failed(
                request_id,
                "Runtime.ExitError",
                f"RequestId: {request_id} Error: Runtime exited with error: "
                f"{environment.exit_description()}",
            )
            return _cold(result, init_duration_ms)
        if message is None:
            environment.kill()  # replaced: the next invocation starts a fresh environment
            return _cold(self._timed_out(request_id, self.timeout_s), init_duration_ms)
        duration_ms = float(message["duration_ms"])
        self._emit("Duration", duration_ms, "Milliseconds", request_id=request_id)
        if message["ok"]:
            return Invocation(
                request_id=request_id,
                status="ok",
                payload=message["payload"],
                error_type=None,
                error_message=None,
                duration_ms=duration_ms,
                init_duration_ms=init_duration_ms,
                cold_start=init_duration_ms is not None,
            )
        error = message["error"]
        self._emit("Errors", 1, "Count", request_id=request_id, error_type=error["errorType"])
        return Invocation(
            request_id=request_id,
            status="error",
            payload=error,
            error_type=error["errorType"],
            error_message=error["errorMessage"],
            duration_ms=duration_ms,
            init_duration_ms=init_duration_ms,
            cold_start=init_duration_ms is not None,
        )

    def _throttled(self, request_id: str) -> Invocation:
        self._emit("Throttles", 1, "Count", request_id=request_id)
        return Invocation(
            request_id=request_id,
            status="throttled",
            payload=None,
            error_type="TooManyRequestsException",
            error_message="Rate Exceeded.",
            duration_ms=0.0,
            init_duration_ms=None,
            cold_start=False,
        )

    def _timed_out(self, request_id: str, timeout_s: float, phase: str = "") -> Invocation:
        self._emit("Timeouts", 1, "Count", request_id=request_id)
        self._emit("Errors", 1, "Count", request_id=request_id, error_type="Sandbox.Timedout")
        self._emit("Duration", timeout_s * 1000, "Milliseconds", request_id=request_id)
        what = "Init phase" if phase == "init" else "Task"
        return Invocation(
            request_id=request_id,
            status="timeout",
            payload=None,
            error_type="Sandbox.Timedout",
            error_message=f"RequestId: {request_id} Error: {what} timed out after "
            f"{timeout_s:.2f} seconds",
            duration_ms=timeout_s * 1000,
            init_duration_ms=None,
            cold_start=False,
        )

    def _failed(
        self, request_id: str, error_type: str, message: str, payload: Any = None
    ) -> Invocation:
        self._emit("Errors", 1, "Count", request_id=request_id, error_type=error_type)
        return Invocation(
            request_id=request_id,
            status="error",
            payload=payload or {"errorType": error_type, "errorMessage": message},
            error_type=error_type,
            error_message=message,
            duration_ms=0.0,
            init_duration_ms=None,
            cold_start=False,
        )

    def _emit(self, metric: str, value: float, unit: str, **extra: Any) -> None:
        if self._metrics is not None:
            self._metrics.emit(self.variant, self.name, metric, value, unit, **extra)


def _with_cold_start(result: Invocation, init_duration_ms: float | None) -> Invocation:
    """``result`` of an invocation that started its environment (init time, when known)."""
    return dataclasses.replace(result, init_duration_ms=init_duration_ms, cold_start=True)


def _cold(result: Invocation, init_duration_ms: float | None) -> Invocation:
    """Mark ``result`` as a cold start when its invocation ran the init phase."""
    return result if init_duration_ms is None else _with_cold_start(result, init_duration_ms)
