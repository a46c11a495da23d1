"""The short but real end-to-end run CI makes: local stage, both variants, the outage scenario,
a report whose numbers show the seed article's resilience claim (or refute it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reports import schema
from stack.local.stage import LocalStage
from tests.e2e.support import asyncbench, last_line, read_summary

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]


def _run(stage: LocalStage, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return asyncbench(
        [
            "run",
            "--target",
            "local",
            "--endpoints",
            str(stage.endpoints_path),
            "--out",
            str(out),
            "--seed",
            "7",
            *extra,
        ]
    )


def test_outage_storage_first_loses_nothing_direct_shows_errors(
    local_stage: LocalStage, tmp_path: Path
) -> None:
    # 16 s at 10/s with the scenario's outage scaled into the middle (about 4 s of it).
    result = _run(
        local_stage,
        tmp_path,
        "--scenario",
        "outage",
        "--duration",
        "16",
        "--rate",
        "10",
        "--repetitions",
        "1",
    )
    run_dir = Path(last_line(result))
    manifest = schema.read_manifest(run_dir)
    assert manifest["stack_config"]["batch_size"] == local_stage.config.batch_size
    trials = schema.read_table(run_dir, schema.TRIALS)
    assert set(trials["variant"]) == {"direct", "storage_first"}
    assert trials["outage_start_ms"].notna().all()

    report = asyncbench(["report", str(run_dir)])
    index_html = Path(last_line(report))
    assert index_html.name == "index.html" and index_html.is_file()
    summary = read_summary(index_html)["scenarios"]["outage"]

    storage_first, direct = summary["storage_first"], summary["direct"]
    assert storage_first["sent"] > 100
    assert storage_first["accepted"] == storage_first["sent"]
    assert storage_first["lost"] == 0
    assert (
        storage_first["succeeded"] + storage_first["failed"] + storage_first["parked"]
        == (storage_first["accepted"])
    )
    # Direct: the outage is visible to clients as errors, and those requests were never stored.
    client = schema.read_table(run_dir, schema.CLIENT)
    trial_of = trials.set_index("variant")
    window = trial_of.loc["direct", ["outage_start_ms", "outage_end_ms"]]
    direct_rows = client[client["variant"] == "direct"]
    during = direct_rows[
        direct_rows["sent_at_ms"].between(window["outage_start_ms"], window["outage_end_ms"] - 200)
    ]
    assert len(during) > 10
    assert (during["status_code"] == 502).mean() > 0.8
    assert direct["lost"] >= len(during[during["status_code"] == 502])


def test_killed_environment_mid_batch_loses_nothing(
    local_stage: LocalStage, tmp_path: Path
) -> None:
    """SIGKILL a stream-processor environment while it works on a batch: the mapping retries."""
    stream_function = local_stage.functions["storage_first"]
    killed: list[int] = []
    stop = threading.Event()

    def kill_busy_environment() -> None:
        # Kill whichever environment is busy, as soon as one is (poll, with the run as deadline).
        while not stop.wait(0.05):
            if stream_function.busy_count > 0 and stream_function.environment_pids:
                pid = stream_function.environment_pids[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return

    killer = threading.Thread(target=kill_busy_environment, daemon=True)
    killer.start()
    try:
        result = _run(
            local_stage,
            tmp_path,
            "--scenario",
            "baseline",
            "--duration",
            "8",
            "--rate",
            "10",
            "--repetitions",
            "1",
        )
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no stream environment was ever busy to be killed"
    run_dir = Path(last_line(result))
    server = schema.read_table(run_dir, schema.SERVER)
    client = schema.read_table(run_dir, schema.CLIENT)
    accepted = client[(client["variant"] == "storage_first") & (client["status_code"] == 202)]
    items = server[server["variant"] == "storage_first"].set_index("request_id")
    assert len(accepted) > 40
    missing = set(accepted["request_id"]) - set(items.index)
    assert not missing, f"accepted but never stored: {sorted(missing)[:5]}"
    statuses = items.loc[list(accepted["request_id"]), "status"]
    assert (statuses == "SUCCEEDED").all(), statuses.value_counts().to_dict()
    assert pid_gone(killed[0])


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie not yet reaped still answers signal 0; it is gone if it is a zombie.
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def test_interrupted_run_is_reported_as_partial(local_stage: LocalStage, tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asyncbench",
            "run",
            "--target",
            "local",
            "--endpoints",
            str(local_stage.endpoints_path),
            "--out",
            str(tmp_path),
            "--scenario",
            "baseline",
            "--duration",
            "30",
            "--rate",
            "10",
            "--repetitions",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:  # wait until load is really flowing, then press Ctrl-C
            lines.append(line)
            if "sent " in line and " sent 0," not in line:
                process.send_signal(signal.SIGINT)
                break
        lines.extend(process.stdout)
        assert process.wait(timeout=120) == 130, "".join(lines[-20:])
    run_dir = Path(lines[-1].strip())
    assert schema.read_manifest(run_dir)["partial"] is True

    report = asyncbench(["report", str(run_dir)])
    index_html = Path(last_line(report))
    assert "PARTIAL" in index_html.read_text(encoding="utf-8").upper()
    assert (index_html.parent / "report.md").read_text(encoding="utf-8").upper().count("PARTIAL")
