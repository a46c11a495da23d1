"""`asyncbench run` for real against the local stage: records match, Ctrl-C leaves a valid folder.

The command runs as a subprocess, as a user types it (the load generator is Locust in its own
children; a signal must reach the command, not the test process).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reports.schema import CLIENT, SERVER, TRIALS, read_manifest, read_table

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]


def _command(local_stage: Any, out: Path, *, rate: float, duration: float) -> list[str]:
    return [
        sys.executable, "-m", "asyncbench", "run", "--target", "local",
        "--endpoints", str(local_stage.endpoints_path), "--scenario", "baseline",
        "--rate", str(rate), "--duration", str(duration), "--repetitions", "1",
        "--seed", "11", "--out", str(out),
    ]  # fmt: skip


def test_short_run_client_rows_and_server_items_match(local_stage: Any, tmp_path: Path) -> None:
    done = subprocess.run(
        _command(local_stage, tmp_path, rate=8, duration=3),
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert run_dir.parent == tmp_path and run_dir.is_dir()
    manifest = read_manifest(run_dir)
    assert manifest["partial"] is False and manifest["trials_done"] == 2
    assert manifest["target"] == "local" and manifest["seed"] == 11

    client = read_table(run_dir, CLIENT)
    server = read_table(run_dir, SERVER)
    trials = read_table(run_dir, TRIALS)
    assert sorted(trials["variant"]) == ["direct", "storage_first"]
    assert (trials["unfinished"] == 0).all() and trials["complete"].all()
    assert (trials["rows_written"] == trials["requests_counted"]).all()
    for variant, ok in (("direct", "succeeded"), ("storage_first", "accepted")):
        sent = client[client["variant"] == variant]
        items = server[server["variant"] == variant]
        assert len(sent) >= 10, f"{variant}: only {len(sent)} requests"
        # A fresh stage may throttle the first direct requests while environments start.
        accepted = sent[sent["outcome"] == ok]
        assert len(accepted) >= len(sent) / 2, sent["outcome"].value_counts()
        # Request by request: every accepted client row has its item and every item its row.
        assert items["request_id"].is_unique and accepted["request_id"].is_unique
        assert set(accepted["request_id"]) <= set(items["request_id"])
        assert set(items["request_id"]) <= set(sent["request_id"].dropna())
        joined = items.merge(sent, on="request_id", suffixes=("_server", "_client"))
        assert len(joined) == len(items)
        assert (joined["trial_server"] == joined["trial_client"]).all()
        assert (joined.loc[joined["outcome"] == ok, "status"] == "SUCCEEDED").all()
        assert items["processed_at_ms"].notna().all()


class _Lines:
    """Collects a pipe's lines on a thread, so the test can poll them with a deadline."""

    def __init__(self, pipe: Any) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} in: {self.lines}")
            try:
                self.lines.append(self._queue.get(timeout=left))
            except queue.Empty:
                continue


@pytest.mark.parametrize("interrupts", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_leaves_a_valid_partial_folder(
    local_stage: Any, tmp_path: Path, interrupts: int
) -> None:
    process = subprocess.Popen(
        _command(local_stage, tmp_path, rate=5, duration=60),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        errors = _Lines(process.stderr)
        errors.wait_for("load starts", 60)
        errors.wait_for(" sent ", 30)  # the first progress line: the load generator runs
        process.send_signal(signal.SIGINT)
        if interrupts == 2:
            errors.wait_for("interrupted:", 30)
            process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    run_dir = Path(stdout.strip().splitlines()[-1])
    manifest = read_manifest(run_dir)
    assert manifest["partial"] is True and manifest["ended_at"] is not None
    trials = read_table(run_dir, TRIALS)
    assert trials["complete"].tolist() == [False]
    client = read_table(run_dir, CLIENT)
    assert len(client) == trials["rows_written"].iloc[0]
    server = read_table(run_dir, SERVER)  # readable, and no item without its client row
    assert set(server["request_id"]) <= set(client["request_id"])
