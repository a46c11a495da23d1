"""The handlers' DynamoDB expressions against AWS's own DynamoDB Local, not only moto.

moto accepts some expressions DynamoDB rejects (reserved words, clause mixes), so every write
path runs once against the real engine, through the ``DYNAMODB_ENDPOINT_URL`` override.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from processor import direct, stream
from processor.runtime import Runtime, wall_clock_ms
from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION, DynamoDBLocal
from tests.processor.events import FakeContext, batch, proxy_event, sequence_numbers, stream_record

pytestmark = pytest.mark.local_stage


@pytest.fixture
def table(dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A fresh table on DynamoDB Local and the environment that points the processor at it."""
    name = f"processor-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", LOCAL_REGION)
    monkeypatch.setenv("DYNAMODB_ENDPOINT_URL", dynamodb_local.endpoint_url)
    monkeypatch.setenv("TABLE_NAME", name)
    monkeypatch.setenv("FAILURE_TTL_SECONDS", "60")
    client = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_local.endpoint_url,
        region_name=LOCAL_REGION,
        **LOCAL_CREDENTIALS,
    )
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name, client


def _runtime(sleeps: list[float]) -> Runtime:
    runtime = Runtime.from_environment()
    runtime.sleep = sleeps.append  # back-offs recorded, not waited for
    runtime.log = lambda fields: None
    return runtime


def _item(client: Any, table_name: str, request_id: str) -> dict[str, Any]:
    item = client.get_item(TableName=table_name, Key={"id": {"S": request_id}})["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


def test_direct_writes_on_dynamodb_local(table: tuple[str, Any]) -> None:
    name, client = table
    runtime = _runtime([])
    event = proxy_event('{"payload": "é \\" \'"}', request_id="d1")
    assert direct.handle(event, FakeContext(), runtime)["statusCode"] == 200
    assert direct.handle(event, FakeContext(), runtime)["statusCode"] == 200  # duplicate
    item = _item(client, name, "d1")
    assert (item["status"], item["attempts"], item["duplicates"]) == ("SUCCEEDED", "1", "1")
    assert item["request"] == '{"payload": "é \\" \'"}'


def test_stream_writes_on_dynamodb_local(table: tuple[str, Any]) -> None:
    name, client = table
    now = wall_clock_ms()
    bodies = {
        "ok": "{}",
        "poison": '{"fail": "always"}',
        "down": json.dumps({"outages": [[now - 1000, now + 600_000]]}),
        "after": "{}",
    }
    records = []
    for request_id, body in bodies.items():
        image = {
            "id": {"S": request_id},
            "run_id": {"S": "r"},
            "status": {"S": "PENDING"},
            "attempts": {"N": "0"},
            "duplicates": {"N": "0"},
            "accepted_at_ms": {"N": str(now)},
            "request": {"S": body},
        }
        client.put_item(TableName=name, Item=image)
        records.append(stream_record("INSERT", request_id, image=image, created_s=now / 1000))
    sleeps: list[float] = []
    runtime = _runtime(sleeps)

    response = stream.handle(batch(*records), FakeContext(), runtime)
    assert response == {"batchItemFailures": sequence_numbers(*records[2:])}
    assert sleeps == [0.5]
    assert stream.handle(batch(records[0]), FakeContext(), runtime) == {"batchItemFailures": []}

    ok, poison, down = (_item(client, name, key) for key in ("ok", "poison", "down"))
    assert (ok["status"], ok["duplicates"], ok["cold_start"]) == ("SUCCEEDED", "1", True)
    assert "error" not in ok and int(ok["ttl"]) > now // 1000
    assert (poison["status"], poison["error"]) == ("FAILED", "poison request")
    assert int(poison["ttl"]) <= now // 1000 + 61
    assert (down["status"], down["attempts"]) == ("PENDING", "1")
    assert down["error"].startswith("downstream outage")
    assert _item(client, name, "after")["status"] == "PENDING"
