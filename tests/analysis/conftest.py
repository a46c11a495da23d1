"""Synthetic run folders with known answers, written once per session through reports.schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.analyze import Options, RunAnalysis, analyze_run
from analysis.load import load_prices, load_run
from analysis.synthetic import SyntheticSpec, build_run, write_run

# Seeded: the CI check below is a 95% statement, so one seed is fixed rather than retried.
BASELINE = SyntheticSpec(warmup_s=5, repetitions=4, seed=2)
# 50/s, outage 20..30 s, drain 150/s: 500 queued drain at 100/s net -> recovered 5 s after.
OUTAGE = SyntheticSpec(
    scenario="outage",
    outage=(20.0, 10.0),
    drain_rate_per_s=150.0,
    lost_per_trial=3,
    parked_per_trial=2,
    repetitions=2,
)
CAPACITY = SyntheticSpec(
    scenario="capacity", stages=((20.0, 10.0), (20.0, 20.0), (20.0, 40.0), (20.0, 80.0)),
    repetitions=1, partial=True,
)  # fmt: skip


@pytest.fixture(scope="session")
def run_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    return {
        "baseline": write_run(base / "baseline", build_run(BASELINE, "baseline-1")),
        "outage": write_run(base / "outage", build_run(OUTAGE, "outage-1")),
        "capacity": write_run(base / "capacity", build_run(CAPACITY, "capacity-1")),
    }


@pytest.fixture(scope="session")
def analyses(run_folders: dict[str, Path]) -> dict[str, RunAnalysis]:
    options = Options(prices=load_prices())
    return {name: analyze_run(load_run(path), options) for name, path in run_folders.items()}
