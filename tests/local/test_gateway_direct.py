"""The direct route: REST proxy events into the real direct handler on the real local Lambda
runtime, and API Gateway's status mapping of every outcome (success, 400, 502, throttle,
function timeout, integration timeout, malformed proxy response)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from stack.config import StackConfig
from stack.local.apigateway.gateway import Gateway
from stack.local.awslambda.runtime import LocalFunction
from stack.local.dynamodb.dynamodb_local import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    DynamoDBLocal,
    client_kwargs,
)
from stack.local.dynamodb.tables import create_tables

pytestmark = pytest.mark.local_stage

CONFIG = StackConfig(name_prefix="gwdirect")

# Handlers the processor does not have, to reach the gateway's other branches.
TEST_HANDLERS = """
def echo(event, context):
    import json
    return {"statusCode": 201, "headers": {"X-Echo": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps(event)}

def dict_body(event, context):
    return {"statusCode": 200, "body": {"not": "a string"}}

def extra_key(event, context):
    return {"statusCode": 200, "body": "x", "unexpected": True}

def sleepy(event, context):
    import time
    time.sleep(float(event["body"]))
    return {"statusCode": 200, "body": "slept"}
"""


@pytest.fixture(scope="module")
def tables(dynamodb_local: DynamoDBLocal) -> dict[str, str]:
    created = create_tables(dynamodb_local.endpoint_url, CONFIG)
    return {variant: table.name for variant, table in created.items()}


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("handlers")
    (directory / "gateway_test_handlers.py").write_text(TEST_HANDLERS)
    return directory


def make_function(
    dynamodb_local: DynamoDBLocal,
    tables: dict[str, str],
    *,
    handler: str = "processor.direct.handler",
    timeout_s: float = 10.0,
    concurrency: int = 2,
    code_dir: Path | None = None,
) -> LocalFunction:
    environment = {
        **CONFIG.processor_environment(tables["direct"]),
        "DYNAMODB_ENDPOINT_URL": dynamodb_local.endpoint_url,
        "AWS_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
    }
    return LocalFunction(
        name="gateway-test-direct",
        variant="direct",
        handler=handler,
        environment=environment,
        timeout_s=timeout_s,
        memory_mb=256,
        concurrency=concurrency,
        code_dir=code_dir,
    )


@pytest.fixture(scope="module")
def direct(dynamodb_local: DynamoDBLocal, tables: dict[str, str]) -> Iterator[Gateway]:
    function = make_function(dynamodb_local, tables, timeout_s=1.0, concurrency=1)
    gateway = Gateway(
        dynamodb_endpoint=dynamodb_local.endpoint_url, tables=tables, direct_function=function
    )
    with function, gateway:
        yield gateway


def call(
    gateway: Gateway, body: bytes | str | None, path: str = "/direct/requests", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        data = body.encode() if isinstance(body, str) else body
        connection.request("POST" if body is not None else "GET", path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_success_is_200_and_the_item_is_stored(
    direct: Gateway, dynamodb_local: DynamoDBLocal, tables: dict[str, str]
) -> None:
    status, headers, data = call(direct, '{"work_ms": 0, "payload": "it\'s"}', **{"X-Run-Id": "r1"})
    assert status == 200, data
    answer = json.loads(data)
    assert answer["status"] == "SUCCEEDED"
    assert headers["x-amzn-requestid"] == answer["requestId"]
    assert headers["content-type"] == "application/json"
    client = boto3.client("dynamodb", **client_kwargs(dynamodb_local.endpoint_url))
    item = client.get_item(TableName=tables["direct"], Key={"id": {"S": answer["requestId"]}})
    assert item["Item"]["run_id"] == {"S": "r1"}
    assert item["Item"]["request"] == {"S": '{"work_ms": 0, "payload": "it\'s"}'}
    status, _, data = call(direct, None, path=f"/direct/requests/{answer['requestId']}")
    assert status == 200
    assert json.loads(data)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("body", ['{"fail": "always"}', "not json", '{"work_ms": -1}'])
def test_permanent_failure_is_400(direct: Gateway, body: str) -> None:
    status, _, data = call(direct, body)
    assert status == 400
    assert "error" in json.loads(data)


def test_transient_failure_is_502_internal_server_error(direct: Gateway) -> None:
    now = time.time_ns() // 1_000_000
    status, _, data = call(direct, json.dumps({"outages": [[now - 60_000, now + 60_000]]}))
    assert status == 502
    assert json.loads(data) == {"message": "Internal server error"}


def test_function_timeout_is_502(direct: Gateway) -> None:
    status, _, data = call(direct, '{"work_ms": 3000}')  # the function's timeout is 1 s
    assert status == 502
    assert json.loads(data) == {"message": "Internal server error"}


def test_throttled_invocation_is_500(dynamodb_local: DynamoDBLocal, tables: dict[str, str]) -> None:
    function = make_function(dynamodb_local, tables, concurrency=1)
    gateway = Gateway(
        dynamodb_endpoint=dynamodb_local.endpoint_url, tables=tables, direct_function=function
    )
    with function, gateway:
        call(gateway, '{"work_ms": 0}')  # warm the one environment
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            # One environment, two overlapping requests: whichever comes second is throttled.
            slow = pool.submit(call, gateway, '{"work_ms": 1500}')
            deadline = time.monotonic() + 5
            statuses = []
            while time.monotonic() < deadline and not slow.done():
                status, _, data = call(gateway, '{"work_ms": 0}')
                statuses.append(status)
                if status == 500:
                    assert json.loads(data) == {"message": "Internal server error"}
                    break
            statuses.append(slow.result()[0])
    assert 500 in statuses
    assert set(statuses) <= {200, 500}


def test_integration_timeout_is_504(
    dynamodb_local: DynamoDBLocal, tables: dict[str, str], code_dir: Path
) -> None:
    function = make_function(
        dynamodb_local, tables, handler="gateway_test_handlers.sleepy", code_dir=code_dir
    )
    gateway = Gateway(
        dynamodb_endpoint=dynamodb_local.endpoint_url,
        tables=tables,
        direct_function=function,
        integration_timeout_s=0.5,  # stands in for API Gateway's 29 s
    )
    with function, gateway:
        assert call(gateway, "0")[0] == 200  # cold start outside the integration timeout
        status, _, data = call(gateway, "2")
        assert status == 504
        assert json.loads(data) == {"message": "Endpoint request timed out"}


@pytest.fixture(scope="module")
def custom(
    dynamodb_local: DynamoDBLocal, tables: dict[str, str], code_dir: Path
) -> Iterator[dict[str, Gateway]]:
    gateways: dict[str, Gateway] = {}
    functions: list[LocalFunction] = []
    for name in ("echo", "dict_body", "extra_key"):
        function = make_function(
            dynamodb_local, tables, handler=f"gateway_test_handlers.{name}", code_dir=code_dir
        )
        functions.append(function)
        gateways[name] = Gateway(
            dynamodb_endpoint=dynamodb_local.endpoint_url, tables=tables, direct_function=function
        )
        gateways[name].start()
    yield gateways
    for gateway in gateways.values():
        gateway.stop()
    for function in functions:
        function.close()


@pytest.mark.parametrize("name", ["dict_body", "extra_key"])
def test_malformed_proxy_response_is_502(custom: dict[str, Gateway], name: str) -> None:
    status, _, data = call(custom[name], "{}")
    assert status == 502
    assert json.loads(data) == {"message": "Internal server error"}


def test_proxy_event_has_the_aws_shape(custom: dict[str, Gateway]) -> None:
    gateway = custom["echo"]
    status, headers, data = call(
        gateway, "é body", path="/direct/requests?a=1&a=2&b=", **{"X-Run-Id": "run-9"}
    )
    assert status == 201
    assert headers["x-echo"] == "1"
    event: dict[str, Any] = json.loads(data)
    assert event["resource"] == "/requests"
    assert event["path"] == "/requests"
    assert event["httpMethod"] == "POST"
    assert event["body"] == "é body"
    assert event["isBase64Encoded"] is False
    assert event["headers"]["X-Run-Id"] == "run-9"
    assert event["multiValueHeaders"]["X-Run-Id"] == ["run-9"]
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["pathParameters"] is None
    assert event["stageVariables"]["tableName"] == CONFIG.table_name("direct")
    context = event["requestContext"]
    assert context["stage"] == "direct"
    assert context["path"] == "/direct/requests"
    assert context["resourcePath"] == "/requests"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] == headers["x-amzn-requestid"]
    assert abs(context["requestTimeEpoch"] - time.time() * 1000) < 10_000
    assert context["protocol"] == "HTTP/1.1"
    assert set(context) >= {"accountId", "apiId", "domainName", "requestTime", "httpMethod"}
