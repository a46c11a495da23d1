"""A short real tune on the local stage: two parallelization factors at a rate where one
saturates; the higher one sustains a clearly higher processing rate, and the stage is restored.

The command runs as a subprocess, as a user types it (Locust lives in its own children).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analysis.load import load_prices, load_run
from analysis.tune import analyze_tune
from reports.schema import read_manifest

pytestmark = [pytest.mark.local_stage, pytest.mark.slow]


def test_higher_parallelization_factor_sustains_a_higher_processing_rate(
    local_stage: Any, tmp_path: Path
) -> None:
    before = local_stage.variant_configs["storage_first"]
    # 20 ms of io work: one lane processing records one after another drains ~30-40/s.
    done = subprocess.run(
        [
            sys.executable, "-m", "asyncbench", "tune", "--target", "local",
            "--endpoints", str(local_stage.endpoints_path),
            "--grid", "parallelization_factor=1,4", "--rate", "80", "--duration", "4",
            "--work-ms", "20", "--repetitions", "1", "--seed", "3", "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    manifest = read_manifest(run_dir)
    tune = manifest["tune"]
    assert tune["variant"] == "storage_first" and set(tune["trial_configurations"]) == {"1", "2"}
    assert sorted(tune["trial_configurations"].values()) == [
        "parallelization_factor=1",
        "parallelization_factor=4",
    ]
    assert "configuration parallelization_factor=4: applying in place" in done.stderr + done.stdout

    table = analyze_tune(load_run(run_dir), load_prices()).table.set_index("configuration")
    slow = table.loc["parallelization_factor=1"]
    fast = table.loc["parallelization_factor=4"]
    assert fast["processing_rate_per_s"] > 1.5 * slow["processing_rate_per_s"], table
    # (Backlog growth is not compared: in a 4 s trial the new mapping's and environments'
    # start-up dominates it on a busy machine.)
    assert local_stage.variant_configs["storage_first"] == before  # restored
