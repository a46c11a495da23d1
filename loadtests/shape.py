"""The load shape of a scenario: which stage, and which target rate, holds at an offset."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from loadtests.scenario import Scenario

__all__ = ["StageAt", "stage_at", "stage_ends_s"]


def stage_ends_s(scenario: Scenario) -> list[float]:
    """Offsets (s from the trial's start) at which each stage ends."""
    return list(accumulate(stage.duration_s for stage in scenario.stages))


@dataclass(frozen=True)
class StageAt:
    """The stage in force: its index (-1 after the load ended) and target rate per second."""

    index: int
    rate_per_s: float


def stage_at(scenario: Scenario, offset_s: float) -> StageAt:
    """The stage in force ``offset_s`` seconds after the trial's start."""
    ends = stage_ends_s(scenario)
    index = bisect_right(ends, max(offset_s, 0.0))
    if index >= len(ends):
        return StageAt(-1, 0.0)
    return StageAt(index, scenario.stages[index].rate_per_s)
