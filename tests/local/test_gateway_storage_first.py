"""The storage-first routes through the real local gateway and DynamoDB Local: the mapping
templates must store any body byte for byte, refuse injection and oversize bodies, and answer
GET with the contract's shape."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from stack.config import StackConfig
from stack.local.apigateway.gateway import Gateway
from stack.local.dynamodb.dynamodb_local import DynamoDBLocal, client_kwargs
from stack.local.dynamodb.tables import create_tables
from stack.local.metrics import MetricsLog

pytestmark = pytest.mark.local_stage


class _NoFunction:
    """The storage-first routes never invoke a function."""

    name = "unused"
    variant = "direct"

    def invoke(self, event: Any) -> Any:
        raise AssertionError("storage-first must not invoke the direct function")


@pytest.fixture(scope="module")
def endpoint_url(dynamodb_local: DynamoDBLocal) -> str:
    return dynamodb_local.endpoint_url


@pytest.fixture(scope="module")
def tables(endpoint_url: str) -> dict[str, str]:
    config = StackConfig(name_prefix="gwsf")
    return {variant: table.name for variant, table in create_tables(endpoint_url, config).items()}


@pytest.fixture(scope="module")
def gateway(endpoint_url: str, tables: dict[str, str]) -> Iterator[Gateway]:
    with Gateway(
        dynamodb_endpoint=endpoint_url,
        tables=tables,
        direct_function=_NoFunction(),  # type: ignore[arg-type]
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def dynamodb(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", **client_kwargs(endpoint_url))


def call(
    gateway: Gateway, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post(gateway: Gateway, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    status, _, data = call(gateway, "POST", "/storage-first/requests", body, **headers)
    return status, json.loads(data)


BODIES = {
    "quotes": "it's a \"quoted\" 'string'",
    "backslashes": "C:\\temp\\new \\\\ \\u0041 \\' \\\"",
    "control": "line one\nline two\r\n\ttabbed \b\f \x00 \x1f \x7f",
    "non_ascii": "café naïve Straße 東京 שלום",
    "emoji": "👍🏽 🚀 a😀b",
    "slashes_and_template": "</script> $context.requestId #set($x = 1) ${x} $!y ## no comment",
    "injection": '", "status": {"S": "SUCCEEDED"}, "x": {"S": "',
    "json_body": json.dumps({"work_ms": 0, "payload": 'it\'s "fine" 😀'}, ensure_ascii=False),
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_body_round_trips_byte_for_byte(gateway: Gateway, dynamodb: Any, name: str) -> None:
    body = BODIES[name]
    status, accepted = post(gateway, body.encode("utf-8"), **{"X-Run-Id": "run-'1\""})
    assert status == 202, accepted
    request_id = accepted["requestId"]
    assert accepted["status"] == "PENDING"
    assert accepted["statusUrl"] == f"{gateway.url}/storage-first/requests/{request_id}"

    status, _, data = call(gateway, "GET", f"/storage-first/requests/{request_id}")
    assert status == 200
    answer = json.loads(data)
    # API Gateway's $input.body of an empty body is "{}" (AWS recorded): what AWS stores.
    stored = body or "{}"
    assert answer["request"] == stored
    assert answer["status"] == "PENDING"
    assert answer["requestId"] == request_id
    assert answer["attempts"] == 0
    assert "processedAtMs" not in answer

    item = dynamodb.get_item(TableName=gateway_table(gateway), Key={"id": {"S": request_id}})
    item = item["Item"]
    assert item["request"] == {"S": stored}
    assert item["run_id"] == {"S": "run-'1\""}
    assert item["status"] == {"S": "PENDING"}
    assert set(item) == {
        "id", "run_id", "status", "attempts", "duplicates", "accepted_at_ms", "request"
    }  # fmt: skip


def gateway_table(gateway: Gateway) -> str:
    return StackConfig(name_prefix="gwsf").table_name("storage_first")


def test_injection_attempt_is_stored_as_plain_text(gateway: Gateway, dynamodb: Any) -> None:
    body = BODIES["injection"]
    status, accepted = post(gateway, body.encode())
    assert status == 202
    item = dynamodb.get_item(
        TableName=gateway_table(gateway), Key={"id": {"S": accepted["requestId"]}}
    )["Item"]
    assert "x" not in item
    assert item["status"] == {"S": "PENDING"}
    assert item["request"] == {"S": body}


def test_accepted_at_is_the_gateway_request_time(gateway: Gateway, dynamodb: Any) -> None:
    import time

    before = time.time_ns() // 1_000_000
    _, accepted = post(gateway, b"{}")
    after = time.time_ns() // 1_000_000
    item = dynamodb.get_item(
        TableName=gateway_table(gateway), Key={"id": {"S": accepted["requestId"]}}
    )["Item"]
    assert before <= int(item["accepted_at_ms"]["N"]) <= after


def test_300_kb_body_is_stored(gateway: Gateway) -> None:
    body = ("x" * 1023 + "\n") * 300
    status, accepted = post(gateway, body.encode())
    assert status == 202
    _, _, data = call(gateway, "GET", f"/storage-first/requests/{accepted['requestId']}")
    assert json.loads(data)["request"] == body


def test_body_over_the_item_limit_is_refused_and_nothing_stored(
    gateway: Gateway, dynamodb: Any
) -> None:
    before = dynamodb.scan(TableName=gateway_table(gateway), Select="COUNT")["Count"]
    status, answer = post(gateway, b"y" * 450_000)
    assert status == 400
    assert "request not stored" in answer["error"]
    assert "size" in answer["error"].lower()
    assert answer["type"].endswith("ValidationException")
    after = dynamodb.scan(TableName=gateway_table(gateway), Select="COUNT")["Count"]
    assert after == before


def test_body_over_the_api_gateway_limit_is_413_before_it_is_read(gateway: Gateway) -> None:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.putrequest("POST", "/storage-first/requests")
    connection.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
    connection.endheaders()  # the gateway answers from the headers alone
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"message": "Request Too Long"}
    connection.close()


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_content_types_are_accepted(gateway: Gateway, content_type: str) -> None:
    assert post(gateway, b"{}", **{"Content-Type": content_type})[0] == 202


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415_like_passthrough_never(
    gateway: Gateway, dynamodb: Any, content_type: str
) -> None:
    before = dynamodb.scan(TableName=gateway_table(gateway), Select="COUNT")["Count"]
    status, answer = post(gateway, b"{}", **{"Content-Type": content_type})
    assert status == 415
    assert answer == {"message": "Unsupported Media Type"}
    assert dynamodb.scan(TableName=gateway_table(gateway), Select="COUNT")["Count"] == before


def test_unknown_request_is_404_with_its_id(gateway: Gateway) -> None:
    status, _, data = call(gateway, "GET", "/storage-first/requests/no-such-id")
    assert status == 404
    assert json.loads(data) == {"error": "no such request", "requestId": "no-such-id"}


def test_get_works_on_the_direct_stage_too(gateway: Gateway) -> None:
    status, _, data = call(gateway, "GET", "/direct/requests/nothing-here")
    assert status == 404
    assert json.loads(data)["requestId"] == "nothing-here"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/storage-first/requests"),
        ("POST", "/storage-first/other"),
        ("DELETE", "/storage-first/requests/abc"),
        ("PUT", "/direct/requests"),
        ("POST", "/prod/requests"),
    ],
)
def test_unknown_route_is_403_missing_authentication_token(
    gateway: Gateway, method: str, path: str
) -> None:
    status, headers, data = call(gateway, method, path, b"{}" if method != "GET" else None)
    assert status == 403
    assert json.loads(data) == {"message": "Missing Authentication Token"}
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_responses_carry_a_request_id_and_keep_the_connection(gateway: Gateway) -> None:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    ids = []
    for _ in range(3):  # several requests over one keep-alive connection
        connection.request("POST", "/storage-first/requests", body=b"{}")
        response = connection.getresponse()
        accepted = json.loads(response.read())
        assert response.status == 202
        assert response.getheader("x-amzn-RequestId") == accepted["requestId"]
        ids.append(accepted["requestId"])
    connection.close()
    assert len(set(ids)) == 3


def test_the_local_stage_serves_the_contract_at_its_endpoints(local_stage: Any) -> None:
    """Through the endpoints file the stage writes: POST, then the statusUrl it answers with."""
    base_url = local_stage.endpoints.variants["storage_first"].base_url
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("POST", parts.path + "/requests", body=b'{"work_ms": 0}')
    response = connection.getresponse()
    accepted = json.loads(response.read())
    assert response.status == 202
    assert accepted["statusUrl"] == f"{base_url}/requests/{accepted['requestId']}"
    connection.request("GET", urlsplit(accepted["statusUrl"]).path)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 200
    assert answer["requestId"] == accepted["requestId"]
    assert answer["request"] == '{"work_ms": 0}'


def test_every_request_is_recorded_in_the_metrics_log(
    endpoint_url: str, tables: dict[str, str], tmp_path: Path
) -> None:
    log_path = tmp_path / "metrics.jsonl"
    metrics = MetricsLog(log_path)
    with Gateway(
        dynamodb_endpoint=endpoint_url,
        tables=tables,
        direct_function=_NoFunction(),  # type: ignore[arg-type]
        metrics=metrics,
    ) as gateway:
        assert post(gateway, b"{}")[0] == 202
        assert call(gateway, "GET", "/nowhere")[0] == 403
    metrics.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(line["variant"], line["status"]) for line in lines] == [
        ("storage_first", 202),
        ("unknown", 403),
    ]
    assert all(line["metric"] == "Latency" and line["unit"] == "Milliseconds" for line in lines)
    assert lines[0]["function"] == "apigateway"
    assert 0 < lines[0]["integration_latency_ms"] <= lines[0]["value"]
    assert lines[1]["integration_latency_ms"] is None
