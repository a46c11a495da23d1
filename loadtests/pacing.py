"""Open-loop pacing: every request has an intended send time fixed by the schedule.

Arrivals are DETERMINISTIC: slot ``k`` is due when the integral of the target rate over the
load shape reaches ``k`` (so a stage at 50/s has one slot every 20 ms, and the fraction of a
slot left at a stage boundary carries into the next stage). Deterministic arrivals give both
variants exactly the same offered load in every trial, so the comparison carries no sampling
noise from the arrival process; Poisson bursts are not what the scenarios study.

With ``count`` load-generator processes, process ``index`` owns the slots ``k % count ==
index``, so together they offer the schedule exactly once. Within a process, users (greenlets)
take the next free slot, wait until it is due and send. A request sent more than
:data:`LATE_TOLERANCE_MS` after its slot keeps its intended time (its latency from intended
time includes the wait) and is counted late; no slot is ever skipped. This module is pure: it
knows no Locust and no gevent, only a monotonic clock.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from loadtests.scenario import Scenario

__all__ = [
    "LATE_TOLERANCE_MS",
    "MAX_USERS_PER_PROCESS",
    "Pacer",
    "Schedule",
    "Slot",
    "users_needed",
]

LATE_TOLERANCE_MS = 10.0
"""A send later than this behind its slot counts as late (scheduler jitter stays below it)."""


@dataclass(frozen=True)
class Slot:
    """One intended request: its number in the schedule and when it is due."""

    number: int
    offset_s: float
    """Seconds after the trial's time zero."""
    stage: int
    rate_per_s: float


class Schedule:
    """Deterministic arrival times of a scenario's load shape."""

    def __init__(self, scenario: Scenario) -> None:
        self._starts: list[float] = []  # stage start offsets (s)
        self._first: list[float] = []  # cumulative arrivals at each stage start
        self._rates: list[float] = []
        offset = 0.0
        arrivals = 0.0
        for stage in scenario.stages:
            self._starts.append(offset)
            self._first.append(arrivals)
            self._rates.append(stage.rate_per_s)
            offset += stage.duration_s
            arrivals += stage.duration_s * stage.rate_per_s
        self.duration_s = offset
        # Slot k exists when its due time is inside the load: k < total arrivals.
        self.total = math.ceil(arrivals - 1e-9)

    def slot(self, number: int) -> Slot | None:
        """Slot ``number`` (0-based), or None when the schedule has no such slot."""
        if number < 0 or number >= self.total:
            return None
        # The last stage whose cumulative arrivals at its start are <= number, skipping idle ones.
        index = bisect_right(self._first, number) - 1
        while self._rates[index] == 0:
            index += 1
        offset = self._starts[index] + (number - self._first[index]) / self._rates[index]
        return Slot(number, offset, index, self._rates[index])

    def stage_at(self, offset_s: float) -> int:
        """Index of the stage in force ``offset_s`` after time zero; -1 outside the load."""
        index = bisect_right(self._starts, offset_s) - 1
        if index < 0 or offset_s >= self.duration_s:
            return -1
        return index

    def rate_at(self, offset_s: float) -> float:
        index = self.stage_at(offset_s)
        return self._rates[index] if index >= 0 else 0.0

    def arrivals_until(self, offset_s: float) -> float:
        """Requests the schedule offers from time zero to ``offset_s`` (fractional)."""
        offset_s = min(max(offset_s, 0.0), self.duration_s)
        index = max(bisect_right(self._starts, offset_s) - 1, 0)
        return self._first[index] + (offset_s - self._starts[index]) * self._rates[index]

    def share(self, index: int, count: int) -> int:
        """How many slots process ``index`` of ``count`` owns (``k % count == index``)."""
        return max(0, math.ceil((self.total - index) / count))


class Pacer:
    """Hands out one process's slots in order and keeps the late-send count.

    ``zero_monotonic`` is the trial's time zero on this process's monotonic clock. Greenlets
    share one pacer; it needs no lock because it never yields between reading and advancing.
    """

    def __init__(
        self,
        schedule: Schedule,
        zero_monotonic: float,
        *,
        index: int = 0,
        count: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= index < count:
            raise ValueError(f"pacer index {index} is not in 0..{count - 1}")
        self.schedule = schedule
        self.zero_monotonic = zero_monotonic
        self._next = index
        self._step = count
        self._clock = clock
        self.share = schedule.share(index, count)
        """Slots of the schedule this process owns."""
        self.stopped = False
        self._ran_out = False
        self.taken = 0
        self.late = 0

    def take(self) -> Slot | None:
        """The next slot of this process, or None when the schedule is done or stopped."""
        slot = None if self.stopped else self.schedule.slot(self._next)
        if slot is None:
            self._ran_out = True
            return None
        self._next += self._step
        self.taken += 1
        return slot

    @property
    def exhausted(self) -> bool:
        """No slot will be handed out any more (all taken, or stopped)."""
        return self.stopped or self._ran_out

    def due_monotonic(self, slot: Slot) -> float:
        return self.zero_monotonic + slot.offset_s

    def wait_s(self, slot: Slot) -> float:
        """How long to wait until the slot is due (<= 0: due already)."""
        return self.due_monotonic(slot) - self._clock()

    def mark_sent(self, slot: Slot, sent_monotonic: float) -> bool:
        """Record that the slot's request left at ``sent_monotonic``; True when it was late."""
        late = (sent_monotonic - self.due_monotonic(slot)) * 1000.0 > LATE_TOLERANCE_MS
        if late:
            self.late += 1
        return late

    def stop(self) -> None:
        """Hand out no more slots (an interrupted trial); slots already taken still send."""
        self.stopped = True


MAX_USERS_PER_PROCESS = 1000
"""Beyond this a process spends its time scheduling idle greenlets rather than sending."""


def users_needed(
    peak_rate_per_s: float, *, processes: int = 1, seconds_in_flight: float = 1.0
) -> int:
    """Users (greenlets) per process so the schedule is met while requests take up to
    ``seconds_in_flight`` each (Little's law, plus headroom for scheduling jitter)."""
    per_process = peak_rate_per_s / max(processes, 1)
    wanted = math.ceil(per_process * seconds_in_flight * 1.2) + 4
    return max(4, min(wanted, MAX_USERS_PER_PROCESS))
