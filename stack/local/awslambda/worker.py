"""One Lambda execution environment: a process that runs one event at a time.

:mod:`stack.local.awslambda.runtime` starts each environment with :func:`serve_environment`, forked
from a fork server that has already imported boto3 (as the Lambda Python runtime ships it), so
a cold start costs a fork plus the handler's own import, not a whole interpreter start-up: on a
2-core machine ten simultaneous interpreter start-ups would otherwise take seconds and throttle
everything behind them. The environment variables are replaced by the function's, the task
root goes first on ``sys.path``, and stdout/stderr go to the function's log.

It imports the handler named in ``_HANDLER`` (the init phase, timed), then speaks JSON
messages over a :class:`multiprocessing.connection.Connection`:

- environment -> runtime, once: ``{"type": "ready", "init_duration_ms": F}`` or
  ``{"type": "init_error", "init_duration_ms": F, "error": {errorType, errorMessage, stackTrace}}``
- runtime -> environment: ``{"request_id": S, "event": ANY, "deadline_ms": EPOCH_MS}``
- environment -> runtime: ``{"type": "result", "ok": true, "payload": ANY, "duration_ms": F}``
  or ``{"type": "result", "ok": false, "error": {...}, "duration_ms": F}``

Error types follow the AWS Python runtime: ``Runtime.ImportModuleError`` (the module or one of its
imports fails), ``Runtime.UserCodeSyntaxError``, ``Runtime.HandlerNotFound``,
``Runtime.MarshalError`` (a result that is not JSON), else the exception's class name.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["PRELOAD_MODULES", "LambdaContext", "load_handler", "serve_environment"]

# What the fork server imports once for every environment: the runtime's own modules and the
# SDK the Lambda Python runtime provides.
PRELOAD_MODULES = [
    "stack.local.awslambda.worker",
    "boto3",
    "botocore.session",
    "botocore.client",
    "stack.local.awslambda.sdk_preload",
]

# How often the watchdog checks that the runtime that started us is still alive.
PARENT_CHECK_INTERVAL_S = 0.5


class LambdaContext:
    """The context object handlers get, with the fields of the AWS Python runtime's."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self._deadline_ms = deadline_ms
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("ASYNCBENCH_FUNCTION_ARN", "")
        # A string on AWS too (the runtime copies the environment variable).
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class InitError(Exception):
    def __init__(self, error_type: str, message: str, stack: list[str]) -> None:
        super().__init__(message)
        self.error = {"errorType": error_type, "errorMessage": message, "stackTrace": stack}


def load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    """Import ``module.function`` the way the AWS Python runtime does; raise InitError."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}'", [])
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except SyntaxError as error:
        raise InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {error}",
            traceback.format_tb(error.__traceback__),
        ) from None
    except Exception as error:  # any failure while importing is an import error to the caller
        raise InitError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {error}",
            traceback.format_tb(error.__traceback__),
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
            [],
        )
    return function


def _watch_parent(parent_pid: int) -> None:
    # An environment busy in a handler never reads its connection, so it would not see the
    # stage die; its parent, the fork server, exits with the stage, and this thread notices.
    while True:
        if os.getppid() != parent_pid:
            os._exit(137)
        time.sleep(PARENT_CHECK_INTERVAL_S)


def _send(connection: Connection, message: dict[str, Any]) -> None:
    connection.send_bytes(json.dumps(message, separators=(",", ":")).encode())


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _invoke(
    handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]
) -> dict[str, Any]:
    request_id = request["request_id"]
    context = LambdaContext(request_id, int(request["deadline_ms"]))
    print(f"START RequestId: {request_id} Version: {context.function_version}", file=sys.stderr)
    started = time.perf_counter()
    message: dict[str, Any]
    try:
        result = handler(request["event"], context)
    except Exception as error:
        message = {"type": "result", "ok": False, "error": _error(error)}
    else:
        try:
            message = {"type": "result", "ok": True, "payload": json.loads(json.dumps(result))}
        except (TypeError, ValueError) as error:
            error_info = _error(error, "Runtime.MarshalError")
            error_info["errorMessage"] = f"Unable to marshal response: {error}"
            message = {"type": "result", "ok": False, "error": error_info}
    duration_ms = (time.perf_counter() - started) * 1000
    message["duration_ms"] = duration_ms
    if not message["ok"]:
        error_info = message["error"]
        print(
            f"[ERROR] {error_info['errorType']}: {error_info['errorMessage']}\n"
            + "".join(error_info["stackTrace"]),
            file=sys.stderr,
        )
    print(f"END RequestId: {request_id}", file=sys.stderr)
    print(f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms", file=sys.stderr)
    return message


def _become_environment(environment: dict[str, str], code_dir: str, log_path: str | None) -> None:
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(code_dir)
    sys.path.insert(0, code_dir)
    if log_path is not None:
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)


def serve_environment(
    connection: Connection, environment: dict[str, str], code_dir: str, log_path: str | None
) -> None:
    """The environment's life: become the function's process, init, then serve events."""
    _become_environment(environment, code_dir, log_path)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    started = time.perf_counter()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except InitError as error:
        init_ms = (time.perf_counter() - started) * 1000
        print(f"[ERROR] {error.error['errorType']}: {error}", file=sys.stderr)
        _send(connection, {"type": "init_error", "init_duration_ms": init_ms, "error": error.error})
        return
    _send(connection, {"type": "ready", "init_duration_ms": (time.perf_counter() - started) * 1000})

    while True:
        try:
            request = json.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return  # the runtime closed the connection: the environment shuts down
        _send(connection, _invoke(handler, request))
