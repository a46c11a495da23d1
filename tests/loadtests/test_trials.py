"""The trial plan: interleaved, every variant once per repetition, seeded and reproducible."""

from __future__ import annotations

import re

import pytest

from asyncbench.errors import RunError
from loadtests.trials import PlannedTrial, make_run_id, plan_trials

VARIANTS = ("direct", "storage_first")


def test_every_repetition_drives_every_variant_once_and_trials_count_from_one() -> None:
    plan = plan_trials(5, seed=7, variants=VARIANTS)
    assert [trial.trial for trial in plan] == list(range(1, 11))
    for repetition in range(1, 6):
        block = [trial for trial in plan if trial.repetition == repetition]
        assert sorted(trial.variant for trial in block) == sorted(VARIANTS)
        # Interleaved: a repetition's trials are adjacent in run order.
        assert [trial.trial for trial in block] == [2 * repetition - 1, 2 * repetition]


def test_same_seed_same_plan() -> None:
    assert plan_trials(6, seed=123) == plan_trials(6, seed=123)


def test_order_is_randomized_per_repetition() -> None:
    orders = {tuple(trial.variant for trial in plan_trials(8, seed=seed)) for seed in range(20)}
    assert len(orders) > 1
    firsts = {trial.variant for trial in plan_trials(40, seed=1) if trial.trial % 2 == 1}
    assert firsts == set(VARIANTS)  # neither variant always goes first


def test_single_variant_and_bad_arguments() -> None:
    assert plan_trials(2, seed=0, variants=("direct",)) == [
        PlannedTrial(1, 1, "direct"),
        PlannedTrial(2, 2, "direct"),
    ]
    with pytest.raises(RunError, match="repetitions"):
        plan_trials(0, seed=0)
    with pytest.raises(RunError, match="distinct"):
        plan_trials(1, seed=0, variants=("direct", "direct"))


def test_run_id_names_time_scenario_and_a_suffix() -> None:
    run_id = make_run_id("Baseline Run", now_s=1_795_875_753.0)
    assert re.fullmatch(r"\d{8}-\d{6}-baseline-run-[0-9a-f]{4}", run_id)
    assert run_id.startswith("20261128-142233-")
