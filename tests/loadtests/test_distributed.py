"""Remote workers for real: `asyncbench run --expect-workers 2` and two `asyncbench worker`
processes, each its own OS process, over TCP on the loopback, against the local stage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadtests.pacing import Schedule
from loadtests.scenario import load_scenario
from reports.schema import CLIENT, TRIALS, read_manifest, read_table

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]

RATE = 40.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _master(local_stage: Any, out: Path, port: int, *, duration: float, reps: int) -> Any:
    command = [
        sys.executable, "-m", "asyncbench", "run", "--target", "local",
        "--endpoints", str(local_stage.endpoints_path), "--scenario", "baseline",
        "--rate", str(RATE), "--duration", str(duration), "--repetitions", str(reps),
        "--seed", "5", "--out", str(out), "--expect-workers", "2",
        "--master-bind-host", "127.0.0.1", "--master-port", str(port),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _worker(port: int, *command: str) -> Any:
    """`asyncbench worker` (or ``command``) for the master on ``port``."""
    command = command or (sys.executable, "-m", "asyncbench", "worker")
    command += ("--master-host", "127.0.0.1", "--master-port", str(port))
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # so the test can kill a worker and its child together
    )  # fmt: skip


def _stop(process: Any) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def test_two_remote_workers_share_one_schedule(local_stage: Any, tmp_path: Path) -> None:
    port = _free_port()
    master = _master(local_stage, tmp_path, port, duration=3, reps=1)
    workers = [_worker(port), _worker(port)]
    try:
        out, err = master.communicate(timeout=240)
    finally:
        for worker in workers:
            _stop(worker)
    assert master.returncode == 0, err
    run_dir = Path(out.strip().splitlines()[-1])
    assert read_manifest(run_dir)["expect_workers"] == 2
    client = read_table(run_dir, CLIENT)
    trials = read_table(run_dir, TRIALS)
    assert len(trials) == 2 and trials["complete"].all()
    assert (trials["workers_lost"] == 0).all() and (trials["dropped_sends"] == 0).all()
    schedule = Schedule(load_scenario("baseline").with_overrides(rate=RATE, duration=3))
    for trial in trials.itertuples():
        rows = client[client["trial"] == trial.trial]
        # Every request any worker sent is a row: Locust's count and the rows agree.
        assert len(rows) == trial.requests_counted == trial.rows_written == schedule.total
        shares = rows.groupby("worker").size().to_dict()
        assert set(shares) == {"w0", "w1"}, shares
        assert abs(shares["w0"] - shares["w1"]) <= 1
        # One schedule: the intended times of both workers together are each slot once.
        offsets = (rows["intended_at_ms"] - trial.started_at_ms) / 1000.0
        expected = [schedule.slot(n).offset_s for n in range(schedule.total)]  # type: ignore[union-attr]
        assert sorted(offsets.tolist()) == pytest.approx(expected, abs=1e-3)


def test_a_worker_killed_mid_trial_is_counted_not_hidden(local_stage: Any, tmp_path: Path) -> None:
    port = _free_port()
    master = _master(local_stage, tmp_path, port, duration=12, reps=1)
    workers = [_worker(port), _worker(port)]
    try:
        # Kill one worker (and its child) once the first trial's rows are flowing.
        deadline = time.monotonic() + 120
        # The first rows are in an open part (*.parquet.tmp) until the part closes.
        while time.monotonic() < deadline and not list(tmp_path.glob("*/data/client/*.parquet*")):
            time.sleep(0.2)  # polling the run folder for the first rows, with a deadline
        os.killpg(workers[1].pid, signal.SIGKILL)
        out, err = master.communicate(timeout=240)
    finally:
        for worker in workers:
            _stop(worker)
    assert master.returncode == 0, err
    lost_lines = [line for line in err.splitlines() if " lost during trial " in line]
    assert len(lost_lines) == 1, err
    name = lost_lines[0].split("worker ", 1)[1].split(" ", 1)[0]
    run_dir = Path(out.strip().splitlines()[-1])
    client = read_table(run_dir, CLIENT)
    trials = read_table(run_dir, TRIALS).set_index("trial")
    first = trials.loc[1]
    assert first["workers_lost"] == 1
    schedule = Schedule(load_scenario("baseline").with_overrides(rate=RATE, duration=12))
    index = int(name[1:])
    delivered = client[(client["trial"] == 1) & (client["worker"] == name)]
    assert 0 < len(delivered) < schedule.share(index, 2)
    assert first["dropped_sends"] == schedule.share(index, 2) - len(delivered)
    assert first["rows_written"] == first["requests_counted"] == len(client[client["trial"] == 1])
    # The run went on with the worker that was left.
    second = trials.loc[2]
    assert second["workers_lost"] == 0 and second["dropped_sends"] == 0
    assert set(client.loc[client["trial"] == 2, "worker"]) == {"w0", "w1"} - {name}


def test_a_worker_of_another_version_is_refused(local_stage: Any, tmp_path: Path) -> None:
    port = _free_port()
    master = _master(local_stage, tmp_path, port, duration=1, reps=1)
    # The worker process itself, as `asyncbench worker` starts it, with another version.
    other_version = (
        sys.executable, "-c",
        "import sys, asyncbench; asyncbench.__version__ = '0.0.0-other'; "
        "from loadtests.distributed import main; sys.exit(main(sys.argv[1:]))",
    )  # fmt: skip
    refused = _worker(port, *other_version)
    try:
        _, refused_err = refused.communicate(timeout=120)
        assert refused.returncode == 3
        assert len(refused_err.strip().splitlines()) == 1, refused_err
        assert "refused by the master" in refused_err and "0.0.0-other" in refused_err
        workers = [_worker(port), _worker(port)]
        try:
            _, err = master.communicate(timeout=240)
        finally:
            for worker in workers:
                _stop(worker)
    finally:
        _stop(refused)
        if master.poll() is None:
            master.kill()
            master.communicate()
    assert master.returncode == 0, err
    assert "refused a worker" in err
