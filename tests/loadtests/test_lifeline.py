"""A load-generator child dies with its parent, even when the parent is killed outright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

GONE_WITHIN_S = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append((int(entry.name), command))
    return found


def _wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def _assert_gone_after_parent_killed(parent: subprocess.Popen[bytes], child: int) -> None:
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        _wait_for(lambda: not _alive(child), GONE_WITHIN_S, f"child {child} to die")
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_asyncbench_worker_takes_its_locust_child_along() -> None:
    command = [sys.executable, "-m", "asyncbench", "worker", "--master-host", "127.0.0.1"]
    command += ["--master-port", str(_free_port())]  # no master: the child waits for one
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found: list[int] = []

    def child_started() -> bool:
        found[:] = [pid for pid, cmd in _children(worker.pid) if "loadtests.distributed" in cmd]
        return bool(found)

    try:
        _wait_for(child_started, 60.0, "the worker's Locust child")
    except BaseException:
        worker.kill()
        worker.wait()
        raise
    time.sleep(1.0)  # let the child get well past its start-up (it must die either way)
    assert _alive(found[0])
    _assert_gone_after_parent_killed(worker, found[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("kernel", [True, False], ids=["prctl", "polling"])
def test_the_child_dies_with_its_parent_by_either_means(kernel: bool) -> None:
    child_code = textwrap.dedent(f"""
        import sys, time
        from loadtests import lifeline
        if not {kernel}:
            lifeline._kernel_signals_on_parent_death = lambda signum: False
        lifeline.die_with_parent(int(sys.argv[1]))
        print("armed", flush=True)
        time.sleep(120)
    """)
    parent_code = textwrap.dedent(f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}, str(os.getpid())])
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, env=_with_repo_path()
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == b"armed"  # the child's line, on the same pipe
    _assert_gone_after_parent_killed(parent, child)
    parent.stdout.close()


def test_a_child_whose_parent_is_already_gone_stops_at_once() -> None:
    code = (
        "from loadtests import lifeline; lifeline.die_with_parent(1); import time; time.sleep(60)"
    )
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-c", code], env=_with_repo_path(), timeout=60)
    assert finished.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 30


def _with_repo_path() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
