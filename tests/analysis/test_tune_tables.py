"""The tune tables' pure parts: the Pareto frontier and the strategies, on known answers."""

from __future__ import annotations

import pandas as pd

from analysis.tune import pareto_frontier, recommend


def test_pareto_frontier_keeps_only_undominated_points() -> None:
    points = pd.DataFrame(
        {"cost": [1.0, 2.0, 3.0, 2.5, 1.0], "p99": [900.0, 300.0, 100.0, 400.0, 950.0]}
    )
    assert list(pareto_frontier(points, "cost", "p99")) == [True, True, True, False, False]


def test_strategies_pick_cheapest_fastest_balanced_among_those_meeting_the_slos() -> None:
    table = pd.DataFrame(
        {
            "configuration": ["a", "b", "c", "d"],
            "cost_per_million": [1.0, 1.2, 3.0, 0.5],
            "lag_p99_ms": [1000.0, 300.0, 250.0, 9000.0],
            "meets_slo": [True, True, True, False],
        }
    )
    per_trial = pd.DataFrame(
        {
            "configuration": ["a"] * 5 + ["b"] * 5 + ["c"] * 2,
            "cost_per_million": [1.0] * 5 + [1.2] * 5 + [3.0] * 2,
            "lag_p99_ms": [1000, 990, 1010, 1005, 995, 300, 310, 290, 305, 295, 250, 251],
        }
    )
    configurations = {"a": {"parallelization_factor": 1}, "b": {"parallelization_factor": 4},
                      "c": {"parallelization_factor": 10}, "d": {"batch_size": 1}}  # fmt: skip
    chosen = recommend(table, per_trial, "lag_p99_ms", configurations)
    assert chosen["cheapest"]["configuration"] == "a"  # d is cheaper but fails the SLOs
    assert chosen["cheapest"]["runner_up"] == "b"
    assert chosen["cheapest"]["difference"] == "significant"  # 5 vs 5 trials, no overlap
    assert chosen["fastest"]["configuration"] == "c"
    assert chosen["fastest"]["difference"] == "too few trials"  # c has 2 trials
    # balanced: a = 1 + 4 = 5, b = 1.2 + 1.2 = 2.4, c = 3 + 1 = 4
    assert chosen["balanced"]["configuration"] == "b"
    assert chosen["balanced"]["set_line"] == "--set parallelization_factor=4"
