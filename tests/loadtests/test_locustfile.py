"""Plain Locust: `locust -f loadtests/locustfile.py --headless` records a run folder that
`asyncbench report` reads, marked as one variant, not interleaved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncbench.paths import PROJECT_ROOT
from loadtests.pacing import Schedule
from loadtests.scenario import load_scenario
from reports.schema import CLIENT, SERVER, TRIALS, read_manifest, read_table

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]

SCENARIO = """
name = "plain"
description = "two stages, for the locustfile test"
warmup_s = 0.5
work_ms = 5
collection_timeout_s = 30
[[stages]]
duration_s = 1.5
rate_per_s = 10
[[stages]]
duration_s = 1.5
rate_per_s = 30
"""


def test_plain_locust_records_a_run_the_report_reads(local_stage: Any, tmp_path: Path) -> None:
    scenario_file = tmp_path / "plain.toml"
    scenario_file.write_text(SCENARIO, encoding="utf-8")
    command = [
        sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "loadtests" / "locustfile.py"),
        "--headless", "--scenario", str(scenario_file), "--variant", "storage_first",
        "--endpoints", str(local_stage.endpoints_path), "--asyncbench-out", str(tmp_path / "runs"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = read_manifest(run_dir)
    assert manifest["interleaved"] is False and manifest["variants"] == ["storage_first"]
    assert manifest["partial"] is False
    total = Schedule(load_scenario(str(scenario_file))).total
    client = read_table(run_dir, CLIENT)
    trials = read_table(run_dir, TRIALS)
    assert len(trials) == 1 and trials["complete"].all()
    assert trials["requests_counted"].tolist() == trials["rows_written"].tolist() == [total]
    assert trials["dropped_sends"].tolist() == [0]
    assert len(client) == total and set(client["variant"]) == {"storage_first"}
    # Open loop on the scenario's schedule, stage by stage.
    assert client.groupby("stage").size().to_dict() == {0: 15, 1: 45}
    server = read_table(run_dir, SERVER)
    accepted = client.loc[client["outcome"] == "accepted", "request_id"]
    assert set(accepted) <= set(server["request_id"])
    report = subprocess.run(
        [sys.executable, "-m", "asyncbench", "report", str(run_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    assert Path(report.stdout.strip().splitlines()[-1]).name == "index.html"
