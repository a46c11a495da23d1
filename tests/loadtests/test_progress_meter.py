"""The progress line's offered and achieved rates describe the same window of time."""

from __future__ import annotations

from typing import Any

from loadtests.engine import ProgressMeter
from loadtests.pacing import Schedule
from loadtests.scenario import Scenario, Stage
from loadtests.wire import TrialProgress


def test_at_a_stage_boundary_both_rates_cover_the_same_window() -> None:
    # 40/s for 3 s, then 80/s; the generator keeps up exactly (sent = what was offered).
    scenario = Scenario(
        name="s", description="", stages=(Stage(3.0, 40.0), Stage(3.0, 80.0)), warmup_s=0
    )
    now = [0.0]
    seen: list[TrialProgress] = []

    def emit(message: Any) -> None:
        seen.append(TrialProgress.from_wire(message["progress"]))

    meter = ProgressMeter(Schedule(scenario), 0.0, emit, clock_ms=lambda: now[0] * 1000.0)
    for second in range(0, 6):
        now[0] = float(second)
        meter.tick(sent=40 * min(second, 3) + 80 * max(second - 3, 0), errors=0)
    # Each line: what the schedule offered and what was achieved, over the same past seconds.
    for progress in seen[1:]:
        assert progress.offered_rate_per_s == progress.achieved_rate_per_s
    # One second into the 80/s stage the 3-s window holds two seconds at 40 and one at 80.
    at_boundary = next(p for p in seen if p.elapsed_s == 4.0)
    assert at_boundary.offered_rate_per_s == round((40 + 40 + 80) / 3, 2)
    assert seen[-1].elapsed_s == 5.0 and seen[-1].offered_rate_per_s == round(200 / 3, 2)
