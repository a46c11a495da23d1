"""Helpers for the event source mapping tests: a stand-in function, tables, polling."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from stack.local.dynamodb.dynamodb_local import DynamoDBLocal, client_kwargs
from stack.local.dynamodb.tables import table_definition

__all__ = [
    "Answer",
    "Call",
    "StandInFunction",
    "create_stream_table",
    "dynamodb_endpoint",
    "ids",
    "wait_until",
]


@dataclass(frozen=True)
class Answer:
    """What the stand-in returns: the fields of the runtime's ``Invocation`` the mapping reads."""

    status: str = "ok"
    payload: Any = None
    error_type: str | None = None


@dataclass(frozen=True)
class Call:
    at: float
    records: list[dict[str, Any]]

    @property
    def ids(self) -> list[str]:
        return ids(self.records)


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [record["dynamodb"]["Keys"]["id"]["S"] for record in records]


@dataclass
class StandInFunction:
    """Has LocalFunction's interface; records every event and answers as ``answer`` says."""

    answer: Callable[[list[dict[str, Any]], int], Answer] = lambda records, number: Answer()
    work_s: float = 0.0
    name: str = "standin"
    variant: str = "storage_first"
    arn: str = "arn:aws:lambda:local:000000000000:function:standin"
    calls: list[Call] = field(default_factory=list)
    max_concurrent: int = 0
    _running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: Mapping[str, Any]) -> Answer:
        records = list(event["Records"])
        with self._lock:
            number = len(self.calls)
            self.calls.append(Call(time.monotonic(), records))
            self._running += 1
            self.max_concurrent = max(self.max_concurrent, self._running)
        try:
            if self.work_s:
                threading.Event().wait(self.work_s)  # simulated work, not waiting for anything
            return self.answer(records, number)
        finally:
            with self._lock:
                self._running -= 1

    def delivered_ids(self) -> list[str]:
        with self._lock:
            return [key for call in self.calls for key in call.ids]


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what or predicate}")
        threading.Event().wait(0.02)


def dynamodb_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's DynamoDB Local (conftest ``dynamodb_local``), else one of our own."""
    try:
        shared = request.getfixturevalue("dynamodb_local")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared.endpoint_url
        return
    own = DynamoDBLocal()
    own.start()
    try:
        yield own.endpoint_url
    finally:
        own.stop()


def create_stream_table(endpoint_url: str, *, ttl: bool = False) -> tuple[Any, str, str]:
    """A new table with a NEW_IMAGE stream: (client, table name, stream ARN)."""
    client = boto3.client("dynamodb", **client_kwargs(endpoint_url))
    name = f"esm-{uuid.uuid4().hex[:12]}"
    description = client.create_table(**table_definition(name, with_stream=True))[
        "TableDescription"
    ]
    if ttl:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
    return client, name, description["LatestStreamArn"]
