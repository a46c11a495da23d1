"""The direct handler on REST proxy events against moto's DynamoDB: 200, 400, raise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from processor import direct
from processor.logic import TransientFailure
from processor.runtime import Runtime
from tests.processor.events import (
    START_MS,
    TABLE,
    FakeClock,
    FakeContext,
    all_items,
    get_item,
    proxy_event,
)

BODY = '{"work_ms": 30, "payload": "quotes \\" and \' and \\\\ and é ✓\\nline"}'


def test_success_stores_the_item_and_answers_200(
    runtime: Runtime, dynamodb: Any, clock: FakeClock, logs: list[dict[str, Any]]
) -> None:
    event = proxy_event(BODY, request_id="req-1", headers={"x-run-id": "run-42"})
    response = direct.handle(event, FakeContext(), runtime)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == {
        "requestId": "req-1",
        "status": "SUCCEEDED",
        "attempts": 1,
        "acceptedAtMs": START_MS - 5,
        "processedAtMs": START_MS + 30,
    }
    assert get_item(dynamodb, "req-1") == {
        "id": "req-1",
        "run_id": "run-42",
        "status": "SUCCEEDED",
        "attempts": 1,
        "duplicates": 0,
        "accepted_at_ms": START_MS - 5,
        "started_at_ms": START_MS,
        "processed_at_ms": START_MS + 30,
        "cold_start": True,
        "request": BODY,
        "ttl": (START_MS + 30) // 1000 + 86_400,
    }
    assert clock.sleeps == [0.03]
    assert logs[-1]["outcome"] == "succeeded" and logs[-1]["requestId"] == "req-1"


@pytest.mark.parametrize("name", ["X-Run-Id", "x-run-id", "X-RUN-ID"])
def test_run_id_header_is_case_insensitive(runtime: Runtime, dynamodb: Any, name: str) -> None:
    direct.handle(proxy_event("{}", request_id="r", headers={name: "run-7"}), None, runtime)
    assert get_item(dynamodb, "r")["run_id"] == "run-7"  # type: ignore[index]


def test_run_id_from_multi_value_headers_and_missing_run_id(
    runtime: Runtime, dynamodb: Any
) -> None:
    event = proxy_event("{}", request_id="multi")
    event["headers"] = None  # API Gateway sends null when it has no single-value headers
    event["multiValueHeaders"] = {"x-run-id": ["first", "last"]}
    direct.handle(event, None, runtime)
    direct.handle(proxy_event("{}", request_id="none"), None, runtime)
    assert get_item(dynamodb, "multi")["run_id"] == "last"  # type: ignore[index]
    assert get_item(dynamodb, "none")["run_id"] == ""  # type: ignore[index]


def test_base64_body_is_decoded_and_stored_exactly(runtime: Runtime, dynamodb: Any) -> None:
    event = proxy_event(BODY, request_id="b64", base64_body=True)
    assert event["body"] != BODY
    assert direct.handle(event, None, runtime)["statusCode"] == 200
    assert get_item(dynamodb, "b64")["request"] == BODY  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"fail": "always", "work_ms": 5}', "poison request"),
        ("{'single': 'quotes'}", "invalid body: not JSON"),
        ('{"work_ms": -3}', "invalid body: 'work_ms'"),
        (None, "invalid body: empty"),
    ],
)
def test_permanent_failure_answers_400_and_writes_nothing(
    runtime: Runtime, dynamodb: Any, body: str | None, error: str
) -> None:
    response = direct.handle(proxy_event(body, request_id="bad"), None, runtime)
    assert response["statusCode"] == 400
    answer = json.loads(response["body"])
    assert answer["requestId"] == "bad"
    assert answer["error"].startswith(error)
    assert all_items(dynamodb) == []


def test_invalid_base64_utf8_is_a_permanent_failure(runtime: Runtime, dynamodb: Any) -> None:
    event = proxy_event(None, request_id="latin1")
    event.update(body="6Q==", isBase64Encoded=True)  # b"\xe9": not UTF-8
    response = direct.handle(event, None, runtime)
    assert response["statusCode"] == 400
    assert "not UTF-8" in json.loads(response["body"])["error"]
    assert all_items(dynamodb) == []


def test_outage_raises_and_writes_nothing(
    runtime: Runtime, dynamodb: Any, logs: list[dict[str, Any]]
) -> None:
    body = json.dumps({"work_ms": 10, "outages": [[START_MS - 1000, START_MS + 1000]]})
    with pytest.raises(TransientFailure, match="downstream outage"):
        direct.handle(proxy_event(body, request_id="down"), None, runtime)
    assert all_items(dynamodb) == []
    assert logs[-1]["outcome"] == "transient_failure"


def test_cold_start_only_on_the_first_invocation(runtime: Runtime, dynamodb: Any) -> None:
    for request_id in ("first", "second", "third"):
        direct.handle(proxy_event("{}", request_id=request_id), None, runtime)
    assert [get_item(dynamodb, r)["cold_start"] for r in ("first", "second", "third")] == [  # type: ignore[index]
        True,
        False,
        False,
    ]


def test_same_request_invoked_twice_counts_a_duplicate_and_keeps_the_first_outcome(
    runtime: Runtime, dynamodb: Any, clock: FakeClock
) -> None:
    event = proxy_event('{"work_ms": 10}', request_id="again")
    first = direct.handle(event, None, runtime)
    clock.now += 5000
    second = direct.handle(event, None, runtime)
    assert second["statusCode"] == 200
    assert json.loads(second["body"]) == json.loads(first["body"])
    item = get_item(dynamodb, "again")
    assert item is not None
    assert item["duplicates"] == 1 and item["processed_at_ms"] == START_MS + 10


@pytest.fixture
def module_environment(
    monkeypatch: pytest.MonkeyPatch, dynamodb: Any
) -> Iterator[pytest.MonkeyPatch]:
    """The environment the stack gives the function, and a fresh execution environment."""
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("TTL_SECONDS", "60")
    monkeypatch.setattr(direct, "_runtime", None)
    yield monkeypatch


def test_module_handler_reads_its_environment_once(
    module_environment: pytest.MonkeyPatch, dynamodb: Any
) -> None:
    direct.handler(proxy_event("{}", request_id="env-1"), FakeContext())
    built = direct._runtime
    direct.handler(proxy_event("{}", request_id="env-2"), FakeContext())
    assert direct._runtime is built
    first, second = get_item(dynamodb, "env-1"), get_item(dynamodb, "env-2")
    assert first is not None and second is not None
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    assert first["ttl"] - first["processed_at_ms"] // 1000 == 60
