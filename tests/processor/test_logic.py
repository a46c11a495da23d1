"""The business-logic simulation: body validation, poison, outages, simulated work."""

from __future__ import annotations

import json
import time

import pytest

from processor.logic import (
    MAX_WORK_MS,
    PermanentFailure,
    Request,
    TransientFailure,
    busy_wait,
    parse_request,
    process,
)
from tests.processor.events import START_MS, FakeClock


def test_defaults_and_unknown_keys_are_allowed() -> None:
    assert parse_request("{}") == Request()
    parsed = parse_request(json.dumps({"work_ms": 20, "payload": "x", "seq": 7}))
    assert parsed == Request(work_ms=20, payload="x")


def test_full_body_parses() -> None:
    body = {"work_ms": 5, "fail": "always", "outages": [[1, 2], [3.5, 9]], "payload": "é'\""}
    assert parse_request(json.dumps(body)) == Request(
        work_ms=5, fail="always", outages=((1, 2), (3.5, 9)), payload="é'\""
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "empty"),
        ("", "empty"),
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"text"', "expected a JSON object, got str"),
        ('{"work_ms": -1}', "'work_ms'"),
        ('{"work_ms": 1.5}', "'work_ms'"),
        ('{"work_ms": true}', "'work_ms'"),
        ('{"work_ms": "20"}', "'work_ms'"),
        (json.dumps({"work_ms": MAX_WORK_MS + 1}), "'work_ms'"),
        ('{"fail": "sometimes"}', "'fail'"),
        ('{"fail": null}', "'fail'"),
        ('{"payload": 3}', "'payload'"),
        ('{"outages": [1, 2]}', "outages[0]"),
        ('{"outages": [[2, 1]]}', "outages[0]"),
        ('{"outages": [[1, 2, 3]]}', "outages[0]"),
        ('{"outages": [[1, "2"]]}', "outages[0]"),
        ('{"outages": [[true, 2]]}', "outages[0]"),
        ('{"outages": {"a": 1}}', "'outages'"),
    ],
)
def test_invalid_bodies_fail_permanently_with_a_clear_message(
    body: str | None, message: str
) -> None:
    with pytest.raises(PermanentFailure, match="invalid body") as raised:
        parse_request(body)
    assert message in str(raised.value)


def test_poison_fails_permanently_even_during_an_outage() -> None:
    clock = FakeClock()
    body = json.dumps({"fail": "always", "work_ms": 50, "outages": [[0, START_MS * 2]]})
    with pytest.raises(PermanentFailure, match=r"^poison request$"):
        process(body, now_ms=clock.now_ms, sleep=clock.sleep)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("offset_ms", "inside"), [(-1, False), (0, True), (999, True), (1000, False)]
)
def test_outage_window_includes_start_and_excludes_end(offset_ms: int, inside: bool) -> None:
    clock = FakeClock(now=START_MS + offset_ms)
    body = json.dumps({"work_ms": 10, "outages": [[1, 2], [START_MS, START_MS + 1000]]})
    if inside:
        with pytest.raises(TransientFailure, match="downstream outage"):
            process(body, now_ms=clock.now_ms, sleep=clock.sleep)
        assert clock.sleeps == []  # the outage is detected before the work is done
    else:
        process(body, now_ms=clock.now_ms, sleep=clock.sleep)
        assert clock.sleeps == [0.01]


def test_success_sleeps_work_ms_and_returns_the_request() -> None:
    clock = FakeClock()
    result = process('{"work_ms": 250, "payload": "p"}', now_ms=clock.now_ms, sleep=clock.sleep)
    assert result == Request(work_ms=250, payload="p")
    assert clock.sleeps == [0.25]
    assert clock.now == START_MS + 250


def test_zero_work_does_not_sleep() -> None:
    clock = FakeClock()
    process("{}", now_ms=clock.now_ms, sleep=clock.sleep)
    assert clock.sleeps == []


def test_work_kind_cpu_busy_loops_and_io_sleeps() -> None:
    slept: list[float] = []
    spun: list[float] = []
    for body in ('{"work_ms": 30, "work_kind": "cpu"}', '{"work_ms": 40}'):
        process(body, now_ms=lambda: 0, sleep=slept.append, spin=spun.append)
    assert spun == [0.03] and slept == [0.04]


def test_unknown_work_kind_is_permanent() -> None:
    with pytest.raises(PermanentFailure, match="work_kind"):
        parse_request('{"work_kind": "gpu"}')


def test_busy_wait_takes_its_time() -> None:
    started = time.perf_counter()
    busy_wait(0.02)
    assert time.perf_counter() - started >= 0.02
