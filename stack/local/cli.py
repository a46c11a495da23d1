"""``asyncbench local up | status | down``: the local stage from the command line.

- ``up`` serves in the foreground until Ctrl-C or SIGTERM, then stops everything it started;
  ``up --detach`` starts the same command as a background process (its output goes to
  ``<state dir>/local/stage.log``), echoes its progress and returns once it serves. Both print
  the endpoints file's path as the last line.
- ``status`` prints what runs where; exit 0 when the stage runs, 3 when it does not (the LSB
  convention for "not running", so scripts can test it).
- ``down`` stops the stage (SIGTERM, then SIGKILL after a deadline) and waits until none of
  its processes is left. Nothing running is not an error: one line, exit 0, so ``down`` can
  always be called in a cleanup step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from asyncbench.errors import AsyncbenchError, LocalStageError
from stack.config import load_config
from stack.local.settings import LocalStageSettings
from stack.local.stage import LocalStage, already_running_error, pid_alive, read_stage_state

__all__ = ["main", "register"]

EXIT_NOT_RUNNING = 3
DOWN_GRACE_S = 30.0
DETACH_EXTRA_WAIT_S = 30.0


def _progress(message: str) -> None:
    print(message, flush=True)


def _settings(args: argparse.Namespace) -> LocalStageSettings:
    return LocalStageSettings(gateway_port=getattr(args, "port", 0) or 0)


# ------------------------------------------------------------------------------------- up
def _up(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set or ())
    settings = _settings(args)
    state = read_stage_state(settings)
    if state is not None:
        raise already_running_error(state)
    if args.detach:
        return _up_detached(args, settings)

    stop_requested = threading.Event()
    starting = True

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if starting:  # abort the start-up; LocalStage.start stops what it began
            raise KeyboardInterrupt
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stage = LocalStage(config, settings, progress=_progress)
    try:
        stage.start()  # on failure it stops what it started, and the error is one line
        starting = False
        _progress(
            f"local stage serving at {stage.gateway_url} "
            "(Ctrl-C or `asyncbench local down` stops it)"
        )
        _progress(str(stage.endpoints_path))
        while not stop_requested.wait(0.5):
            pass
        print("stopping the local stage...", file=sys.stderr, flush=True)
    finally:
        stage.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("local stage stopped", file=sys.stderr, flush=True)
    return 0


def _child_command(args: argparse.Namespace) -> list[str]:
    # `python -m stack.local.cli`, not the full console script: the stage process then never
    # imports the load generator and analysis libraries (faster start, less resident memory).
    command = [sys.executable, "-m", "stack.local.cli", "up"]
    if args.config:
        command += ["--config", str(args.config)]
    for pair in args.set or ():
        command += ["--set", pair]
    if args.port:
        command += ["--port", str(args.port)]
    return command


def _up_detached(args: argparse.Namespace, settings: LocalStageSettings) -> int:
    settings.stage_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.stage_dir / "stage.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        # posix_spawn, not Popen: the child outlives us, so nobody will ever wait() for it.
        pid = os.posix_spawn(
            sys.executable,
            _child_command(args),
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)
        os.close(null_fd)
    _progress(f"local stage starting in the background (pid {pid}, log {log_path})")
    deadline = time.monotonic() + settings.startup_timeout_s + DETACH_EXTRA_WAIT_S
    echoed = 0
    while True:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[echoed:]:
            if not line.startswith(("asyncbench: error:", "/")):
                _progress(f"  {line}")
        echoed = len(lines)
        exited, status = os.waitpid(pid, os.WNOHANG)
        if exited:
            errors = [line for line in lines if line.startswith("asyncbench: error: ")]
            reason = (
                errors[-1].removeprefix("asyncbench: error: ")
                if errors
                else f"it exited with status {os.waitstatus_to_exitcode(status)}; see {log_path}"
            )
            raise LocalStageError(f"the local stage did not start: {reason}")
        state = read_stage_state(settings)
        if state is not None and state.pid == pid and state.status == "serving":
            _progress(
                f"local stage serving at {state.gateway_url}; stop it with `asyncbench local down`"
            )
            _progress(state.endpoints_path)
            return 0
        if time.monotonic() > deadline:
            _kill_stage_processes(pid, None, ())
            raise LocalStageError(f"the local stage did not start in time; see {log_path}")
        time.sleep(0.2)


# --------------------------------------------------------------------------------- status
def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = read_stage_state(settings)
    if state is None:
        print("the local stage is not running")
        return EXIT_NOT_RUNNING
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at_ms / 1000))
    print(f"local stage {state.status} (pid {state.pid}, started {started})")
    print(f"  gateway:        {state.gateway_url or '-'}")
    if state.gateway_url:
        print(f"    direct:        {state.gateway_url}/direct")
        print(f"    storage-first: {state.gateway_url}/storage-first")
    dynamodb_pid = f" (pid {state.dynamodb_pid})" if state.dynamodb_pid else ""
    print(f"  DynamoDB Local: {state.dynamodb_endpoint or '-'}{dynamodb_pid}")
    print(f"  logs:           {settings.log_dir}")
    print(f"  metrics log:    {settings.metrics_log_path}")
    print(f"  endpoints:      {state.endpoints_path}")
    return 0


# ----------------------------------------------------------------------------------- down
def _kill_stage_processes(pid: int, dynamodb_pid: int | None, others: tuple[int, ...]) -> None:
    for target in (pid, dynamodb_pid, *others):
        if target and pid_alive(target):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _down(args: argparse.Namespace) -> int:
    settings = _settings(args)
    state = read_stage_state(settings)
    if state is None:
        print("the local stage is not running; nothing to stop")
        return 0
    print(f"stopping the local stage (pid {state.pid})...", flush=True)
    watched = [state.pid, *([state.dynamodb_pid] if state.dynamodb_pid else [])]
    os.kill(state.pid, signal.SIGTERM)
    if not _wait_gone(watched, DOWN_GRACE_S):
        print("it did not stop in time; killing it", file=sys.stderr, flush=True)
        _kill_stage_processes(state.pid, state.dynamodb_pid, state.environment_pids)
        if not _wait_gone(watched, 10.0):
            raise LocalStageError(f"could not stop the local stage (pid {state.pid})")
    for path in (settings.pid_path, settings.endpoints_path):
        if path.exists() and read_stage_state(settings) is None:
            path.unlink(missing_ok=True)
    print("local stage stopped")
    return 0


# ------------------------------------------------------------------------------- register
def _help(parser: argparse.ArgumentParser) -> object:
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def register(subparsers: argparse._SubParsersAction) -> None:
    local = subparsers.add_parser(
        "local",
        help="the local stage: both variants on this machine (DynamoDB Local + emulated AWS)",
        description="Bring the local stage up, see where it runs, bring it down.",
    )
    local.set_defaults(handler=_help(local))
    commands = local.add_subparsers(dest="local_command", metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="start the local stage and write the endpoints file",
        description="Start DynamoDB Local, the gateway, both functions and the event source "
        "mapping on 127.0.0.1; print the endpoints file's path last.",
    )
    up.add_argument(
        "--detach", action="store_true", help="run in the background; return once it serves"
    )
    up.add_argument("--config", type=Path, help="stack config file (JSON or TOML)")
    up.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    up.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    up.set_defaults(handler=_up)

    commands.add_parser("status", help="what runs where (exit 3 when not running)").set_defaults(
        handler=_status
    )
    commands.add_parser(
        "down", help="stop the local stage, leaving no process behind"
    ).set_defaults(handler=_down)


def main(argv: list[str] | None = None) -> int:
    """``python -m stack.local.cli up|status|down``: the same commands without the others."""
    parser = argparse.ArgumentParser(prog="asyncbench")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["local", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args) or 0)
    except AsyncbenchError as error:
        print(f"asyncbench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("asyncbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
