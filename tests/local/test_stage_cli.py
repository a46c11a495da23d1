"""`asyncbench local up --detach | status | down` as a user runs them, in a temporary state dir:
up serves and writes the endpoints file, a second up is refused while the first keeps running,
down leaves no process behind, and the unhappy paths are one clear line each."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from asyncbench.paths import PROJECT_ROOT
from stack.endpoints import read_endpoints
from stack.local.stage import pid_alive

pytestmark = pytest.mark.local_stage


def asyncbench(
    state_dir: Path, *args: str, path: str | None = None, full_cli: bool = False
) -> subprocess.CompletedProcess:
    """``asyncbench local ARGS``; through ``python -m stack.local.cli`` unless ``full_cli``
    (the same handlers without importing every other package, so the test stays fast)."""
    env = {**os.environ, "ASYNCBENCH_STATE_DIR": str(state_dir)}
    if path is not None:
        env["PATH"] = path
    entry = ["asyncbench", "local"] if full_cli else ["stack.local.cli"]
    return subprocess.run(
        [sys.executable, "-m", *entry, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def wait_gone(pids: list[int], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(pid_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still alive: {[p for p in pids if pid_alive(p)]}"
        time.sleep(0.05)


@pytest.mark.slow
def test_up_detach_status_refused_second_up_and_down(tmp_path: Path):
    up = asyncbench(tmp_path, "up", "--detach")
    assert up.returncode == 0, up.stderr
    endpoints_path = Path(up.stdout.strip().splitlines()[-1])
    assert endpoints_path == tmp_path / "endpoints-local.json"
    endpoints = read_endpoints(endpoints_path)
    assert endpoints.target == "local" and endpoints.region == "local"
    assert endpoints.variants["direct"].base_url.endswith("/direct")
    assert endpoints.variants["storage_first"].base_url.endswith("/storage-first")
    assert endpoints.variants["storage_first"].failure_destination is not None
    assert Path(endpoints.extra["metrics_log"]).exists()
    assert "starting DynamoDB Local" in up.stdout  # progress while it starts

    state = json.loads((tmp_path / "local-stage.json").read_text())
    try:
        status = asyncbench(tmp_path, "status")
        assert status.returncode == 0 and "serving" in status.stdout
        assert endpoints.variants["direct"].base_url in status.stdout

        # It really serves: a storage-first request is accepted.
        request = urllib.request.Request(
            endpoints.variants["storage_first"].base_url + "/requests",
            data=b'{"work_ms": 0}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        direct = urllib.request.Request(
            endpoints.variants["direct"].base_url + "/requests",
            data=b'{"work_ms": 0}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(direct, timeout=30) as response:  # starts an environment
            assert response.status == 200

        second = asyncbench(tmp_path, "up", "--detach")
        assert second.returncode == 2
        assert second.stderr.strip() == (
            f"asyncbench: error: the local stage is already running (pid {state['pid']}, "
            f"endpoints {endpoints_path}); run `asyncbench local down` first"
        )
        assert asyncbench(tmp_path, "status").returncode == 0  # the first keeps running
        # The stage and everything under it: JVM, fork server, Lambda environments.
        processes = [state["pid"]] + [
            child.pid for child in psutil.Process(state["pid"]).children(recursive=True)
        ]
        assert len(processes) >= 4  # stage, JVM, fork server, >= 1 environment
    finally:
        down = asyncbench(tmp_path, "down")
    assert down.returncode == 0 and "local stage stopped" in down.stdout
    wait_gone(processes)
    assert not endpoints_path.exists() and not (tmp_path / "local-stage.json").exists()

    stopped = asyncbench(tmp_path, "status")
    assert stopped.returncode == 3 and stopped.stdout.strip() == "the local stage is not running"


def test_down_with_nothing_running_is_one_line_and_succeeds(tmp_path: Path):
    down = asyncbench(tmp_path, "down", full_cli=True)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "the local stage is not running; nothing to stop"


def test_up_without_java_is_one_line_and_leaves_nothing(tmp_path: Path):
    empty = tmp_path / "empty-path"
    empty.mkdir()
    up = asyncbench(tmp_path / "state", "up", path=str(empty))
    assert up.returncode == 2
    (line,) = up.stderr.strip().splitlines()[-1:]
    assert line.startswith("asyncbench: error: Java is not installed")
    assert "openjdk-17-jre-headless" in line
    assert not (tmp_path / "state" / "local-stage.json").exists()


def test_stale_state_file_of_a_dead_stage_is_ignored(tmp_path: Path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / "local-stage.json").write_text(
        json.dumps(
            {
                "pid": int(dead.stdout),
                "status": "serving",
                "started_at_ms": 0,
                "endpoints_path": str(tmp_path / "endpoints-local.json"),
            }
        )
    )
    status = asyncbench(tmp_path, "status")
    assert status.returncode == 3
    assert not (tmp_path / "local-stage.json").exists()


def test_session_stage_serves_both_variants_and_records_metrics(local_stage: Any):
    endpoints = read_endpoints(local_stage.endpoints_path)
    assert endpoints == local_stage.endpoints
    assert endpoints.extra["metrics_log"] == str(local_stage.metrics_log)
    assert endpoints.variants["direct"].base_url == f"{local_stage.gateway_url}/direct"
    assert set(local_stage.functions) == {"direct", "storage_first"}

    direct = urllib.request.Request(
        endpoints.variants["direct"].base_url + "/requests",
        data=b'{"work_ms": 0}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(direct, timeout=30) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "SUCCEEDED"

    metrics = [json.loads(line) for line in local_stage.metrics_log.read_text().splitlines()]
    direct_metrics = {m["metric"] for m in metrics if m["variant"] == "direct"}
    assert {"Invocations", "Duration", "ConcurrentExecutions"} <= direct_metrics


@pytest.mark.slow
def test_a_sigkilled_stage_leaves_no_orphan(tmp_path: Path):
    up = asyncbench(tmp_path, "up", "--detach")
    assert up.returncode == 0, up.stderr
    endpoints = read_endpoints(Path(up.stdout.strip().splitlines()[-1]))
    request = urllib.request.Request(
        endpoints.variants["direct"].base_url + "/requests",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # starts an environment
        assert response.status == 200
    stage_pid = json.loads((tmp_path / "local-stage.json").read_text())["pid"]
    children = [child.pid for child in psutil.Process(stage_pid).children(recursive=True)]
    assert len(children) >= 2  # DynamoDB Local and at least one Lambda environment

    os.kill(stage_pid, signal.SIGKILL)
    wait_gone([stage_pid, *children])
    status = asyncbench(tmp_path, "status")
    assert status.returncode == 3  # the dead stage's state file is recognised and removed
    assert not (tmp_path / "local-stage.json").exists()


def test_gateway_port_in_use_is_one_line_before_anything_starts(tmp_path: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = asyncbench(tmp_path, "up", "--port", str(port))
    assert up.returncode == 2 and up.stdout == ""
    assert up.stderr.strip() == (
        f"asyncbench: error: the local API gateway cannot listen on 127.0.0.1:{port} (Address "
        "already in use); choose another port with --port (0 picks a free one) or stop what uses it"
    )
    assert not (tmp_path / "local-stage.json").exists()


@pytest.mark.slow
def test_foreground_up_stops_everything_on_ctrl_c(tmp_path: Path):
    stage = subprocess.Popen(
        [sys.executable, "-m", "stack.local.cli", "up"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ASYNCBENCH_STATE_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert stage.stdout is not None
        for line in stage.stdout:  # progress lines, then the endpoints path once it serves
            if line.strip() == str(tmp_path / "endpoints-local.json"):
                break
        state = json.loads((tmp_path / "local-stage.json").read_text())
        assert state["pid"] == stage.pid and pid_alive(state["dynamodb_pid"])
        stage.send_signal(signal.SIGINT)
        _, stderr = stage.communicate(timeout=60)
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.communicate()
    assert stage.returncode == 0 and "local stage stopped" in stderr
    wait_gone([state["dynamodb_pid"]])
    assert not (tmp_path / "local-stage.json").exists()
