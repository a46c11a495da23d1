"""Fixtures of the handler tests: moto's in-process DynamoDB, a fake clock, a runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from processor.runtime import INVOCATION_RECORD, Runtime
from processor.settings import Settings
from tests.processor.events import REGION, TABLE, FakeClock

FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, so no test can reach a real account."""
    for name, value in FAKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    for name in ("DYNAMODB_ENDPOINT_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="package")
def _shared_client() -> Iterator[Any]:
    # Creating a boto3 client is the slow part of a moto test (0.1-0.5 s on a busy machine);
    # one client serves every test, each under its own fresh mock_aws (so its own tables).
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fake_aws(monkeypatch)
        yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_aws(monkeypatch)


@pytest.fixture
def dynamodb(aws_credentials: None, _shared_client: Any) -> Iterator[Any]:
    """A low-level client of a fresh moto DynamoDB holding the requests table (key ``id``)."""
    with mock_aws():
        _shared_client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        yield _shared_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def logs() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def invocations() -> list[dict[str, Any]]:
    """The per-invocation structured lines (kept apart from the per-record ``logs``)."""
    return []


@pytest.fixture
def make_runtime(
    dynamodb: Any,
    clock: FakeClock,
    logs: list[dict[str, Any]],
    invocations: list[dict[str, Any]],
) -> Callable[..., Runtime]:
    """A runtime on moto with the fake clock; keyword arguments override settings."""

    def make(**overrides: Any) -> Runtime:
        settings = Settings(
            **{
                "table_name": TABLE,
                "ttl_seconds": 86_400,
                "failure_ttl_seconds": 0,
                "max_attempts": 5,
                "max_record_age_s": 3600,
                "retry_backoff_base_ms": 500,
                "retry_backoff_max_ms": 8000,
                **overrides,
            }
        )
        return Runtime(
            settings=settings,
            dynamodb=dynamodb,
            now_ms=clock.now_ms,
            sleep=clock.sleep,
            log=lambda fields: (
                invocations if fields.get("record") == INVOCATION_RECORD else logs
            ).append(dict(fields)),
        )

    return make


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()
