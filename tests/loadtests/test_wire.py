"""The load generator's messages survive their trip through JSON unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from loadtests.scenario import ClientRetry, Outage, Scenario, Stage
from loadtests.wire import (
    TrialLoadResult,
    TrialPlan,
    TrialProgress,
    parse_engine_message,
)


def _through_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_a_plan_round_trips_with_its_scenario() -> None:
    scenario = Scenario(
        name="s",
        description="d",
        stages=(Stage(2.0, 10.0), Stage(3.0, 40.0)),
        warmup_s=1.0,
        outage=Outage(1.0, 0.5),
        client_retry=ClientRetry(max_attempts=3, backoff_ms=50),
        poll_results=True,
    )
    plan = TrialPlan("run", 3, 2, "direct", "http://h/direct", scenario, Path("/r"), 12.5, 7)
    assert TrialPlan.from_wire(_through_json(plan.to_wire())) == plan  # type: ignore[arg-type]


def test_progress_and_result_round_trip() -> None:
    progress = TrialProgress(1.5, 20.0, 19.5, 30, 1)
    assert TrialProgress.from_wire(_through_json(progress.to_wire())) == progress  # type: ignore[arg-type]
    result = TrialLoadResult(
        started_at_ms=1.0,
        ended_at_ms=2.0,
        warmup_until_ms=1.5,
        requests_counted={"w0": 5, "w1": 4},
        rows_written={"w0": 5, "w1": 4},
        late_sends=1,
        interrupted=True,
        users=8,
        cpu_s=0.25,
        workers=("w0", "w1"),
        dropped_sends=3,
        workers_lost=("w1",),
        ready_at_ms=0.5,
    )
    assert TrialLoadResult.from_wire(_through_json(result.to_wire())) == result  # type: ignore[arg-type]


def test_only_engine_messages_are_parsed() -> None:
    assert parse_engine_message({"type": "notice", "message": "m"}) == {
        "type": "notice",
        "message": "m",
    }
    assert parse_engine_message({"type": "job"}) is None
    assert parse_engine_message(["progress"]) is None
