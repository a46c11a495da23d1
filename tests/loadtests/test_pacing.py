"""Open-loop schedule math and the pacer's late-send accounting (pure, no Locust)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from loadtests.pacing import LATE_TOLERANCE_MS, Pacer, Schedule, users_needed
from loadtests.scenario import Scenario, Stage


def _scenario(*stages: tuple[float, float]) -> Scenario:
    return Scenario(
        name="t", description="", stages=tuple(Stage(d, r) for d, r in stages), warmup_s=0
    )


def _offsets(schedule: Schedule) -> list[float]:
    slots = [schedule.slot(number) for number in range(schedule.total)]
    return [slot.offset_s for slot in slots if slot is not None]


def test_a_steady_stage_has_one_slot_every_interval() -> None:
    schedule = Schedule(_scenario((2, 50)))
    assert schedule.total == 100
    assert _offsets(schedule)[:3] == pytest.approx([0.0, 0.02, 0.04])
    assert _offsets(schedule)[-1] == pytest.approx(1.98)
    assert schedule.slot(100) is None
    assert schedule.slot(-1) is None


def test_stages_carry_fractions_and_skip_idle_stages() -> None:
    schedule = Schedule(_scenario((1, 2.5), (1, 0), (1, 10)))
    offsets = _offsets(schedule)
    # 2.5 arrivals in the first second: slots at 0, 0.4, 0.8; the half slot left over is due
    # 0.05 s into the third stage (the idle stage offers nothing).
    assert offsets[:3] == pytest.approx([0.0, 0.4, 0.8])
    assert offsets[3] == pytest.approx(2.05)
    assert schedule.total == 13
    assert all(b > a for a, b in pairwise(offsets))
    third = schedule.slot(3)
    assert third is not None and (third.stage, third.rate_per_s) == (2, 10)
    assert schedule.rate_at(1.5) == 0 and schedule.rate_at(2.5) == 10 and schedule.rate_at(3) == 0


def test_the_arrival_count_matches_the_offered_load_per_stage() -> None:
    scenario = Scenario.from_dict(
        {"name": "c", "stages": [{"duration_s": 20, "rate_per_s": r} for r in (10, 20, 40)]},
        source="test",
    )
    schedule = Schedule(scenario)
    stages = [schedule.slot(n).stage for n in range(schedule.total)]  # type: ignore[union-attr]
    assert [stages.count(index) for index in range(3)] == [200, 400, 800]
    assert schedule.stage_at(25) == 1 and schedule.stage_at(60) == schedule.stage_at(-1) == -1


def test_processes_split_the_schedule_exactly_once() -> None:
    schedule = Schedule(_scenario((1, 101)))
    taken = []
    for index in range(3):
        pacer = Pacer(schedule, 0.0, index=index, count=3)
        while (slot := pacer.take()) is not None:
            taken.append(slot.number)
    assert sorted(taken) == list(range(101))


def test_late_sends_are_counted_and_keep_their_slot() -> None:
    now = [100.0]
    pacer = Pacer(Schedule(_scenario((1, 10))), 100.0, clock=lambda: now[0])
    first = pacer.take()
    second = pacer.take()
    assert first is not None and second is not None
    assert pacer.wait_s(second) == pytest.approx(0.1)
    assert not pacer.mark_sent(first, 100.0 + LATE_TOLERANCE_MS / 2000)
    now[0] = 100.5  # a stall: the second slot (due at 100.1) goes out 400 ms late
    assert pacer.wait_s(second) < 0
    assert pacer.mark_sent(second, now[0])
    assert pacer.due_monotonic(second) == pytest.approx(100.1)
    assert pacer.late == 1
    pacer.stop()
    assert pacer.take() is None


def test_enough_users_for_the_rate() -> None:
    assert users_needed(500) >= 500
    assert users_needed(500, processes=2) < users_needed(500)
    assert users_needed(80, seconds_in_flight=2.0) >= 160
