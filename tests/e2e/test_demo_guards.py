"""`asyncbench demo` when it cannot or must not run: a clear line, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.support import asyncbench

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    return {
        "ASYNCBENCH_STATE_DIR": str(tmp_path / "state"),
        "ASYNCBENCH_REPORTS_DIR": str(tmp_path / "reports"),
    }


def _dynamodb_local_jvms(state_dir: Path) -> set[int]:
    """DynamoDB Local JVMs started for this test's state dir (they inherit its environment);
    other suites' JVMs on a shared machine are not counted."""
    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        if not any("DynamoDBLocal.jar" in part for part in process.info["cmdline"] or ()):
            continue
        try:
            environment = process.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if environment.get("ASYNCBENCH_STATE_DIR") == str(state_dir):
            pids.add(process.pid)
    return pids


def test_demo_with_dynamodb_local_failing_to_start(tmp_path: Path) -> None:
    # A JVM option the JVM refuses: DynamoDB Local exits during start-up.
    env = _isolated_env(tmp_path) | {"JAVA_TOOL_OPTIONS": "-XX:+NoSuchOption"}
    result = asyncbench(["demo", "--quick"], env=env, timeout_s=120)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, result.stderr
    assert "DynamoDB Local" in error_lines[0]
    orphans = _dynamodb_local_jvms(tmp_path / "state")
    assert not orphans, f"orphan DynamoDB Local JVM(s) left running: {sorted(orphans)}"
    status = asyncbench(["local", "status"], env=env)
    assert "not running" in status.stdout + status.stderr


def _start_demo(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "asyncbench", "demo", "--quick"],
        env={**os.environ, **_isolated_env(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_stage(demo: subprocess.Popen[bytes], endpoints: Path) -> None:
    """Poll (deadline 120 s) until the demo's stage serves: its endpoints file exists."""
    deadline = time.monotonic() + 120
    while not endpoints.exists():
        assert demo.poll() is None, "the demo ended before its stage served"
        assert time.monotonic() < deadline, "the demo's stage never came up"
        time.sleep(0.2)


def test_second_demo_while_one_runs(tmp_path: Path) -> None:
    endpoints = tmp_path / "state" / "endpoints-local.json"
    with _start_demo(tmp_path) as first:
        try:
            _wait_for_stage(first, endpoints)
            second = asyncbench(["demo", "--quick"], env=_isolated_env(tmp_path), timeout_s=60)
            assert second.returncode == 2
            assert "already running" in second.stderr
            assert second.stderr.count("\n") == 1, second.stderr
            assert first.poll() is None, "the second demo stopped the first"
            assert endpoints.exists(), "the second demo tore down the first demo's stage"
        finally:
            first.send_signal(signal.SIGINT)  # Ctrl-C: the first demo takes its stage down
            first.wait(timeout=120)
    assert not endpoints.exists()
    status = asyncbench(["local", "status"], env=_isolated_env(tmp_path))
    assert "not running" in status.stdout + status.stderr


def test_terminated_demo_takes_its_stage_down(tmp_path: Path) -> None:
    """`kill` (SIGTERM) of a running demo, as a CI timeout would: its stage is stopped too."""
    endpoints = tmp_path / "state" / "endpoints-local.json"
    with _start_demo(tmp_path) as demo:
        _wait_for_stage(demo, endpoints)
        stage_pid = json.loads((tmp_path / "state" / "local-stage.json").read_text())["pid"]
        demo.terminate()
        assert demo.wait(timeout=120) == 128 + signal.SIGTERM
    assert not endpoints.exists()
    assert not psutil.pid_exists(stage_pid) or psutil.Process(stage_pid).status() == "zombie"
