"""Lambda's Invoke API on the local stage, called through boto3's own ``lambda`` client: the
handler's result, a function error, an unknown function, a throttle, and the endpoints file's
``lambda_endpoint`` and ``functions``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from asyncbench.errors import EndpointsError
from stack.endpoints import Endpoints, read_endpoints
from stack.local.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION, DynamoDBLocal
from stack.local.gateway import Gateway
from stack.local.lambda_runtime import LocalFunction
from stack.local.stage import LocalStage

pytestmark = pytest.mark.local_stage


def lambda_client(endpoint_url: str, *, retries: int = 1) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        config=Config(retries={"total_max_attempts": retries, "mode": "standard"}),
        **LOCAL_CREDENTIALS,
    )


def proxy_event(body: str) -> dict[str, Any]:
    return {
        "resource": "/requests",
        "path": "/requests",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "stage": "direct",
        },
    }


def test_endpoints_file_names_the_invoke_endpoint_and_functions(local_stage: LocalStage):
    endpoints = read_endpoints(local_stage.endpoints_path)
    assert endpoints.lambda_endpoint == local_stage.gateway_url
    assert endpoints.function_name("direct") == local_stage.functions["direct"].name
    assert endpoints.function_name("storage_first") == local_stage.functions["storage_first"].name
    without = Endpoints(target="aws", region="eu-west-1", variants={})
    assert without.lambda_endpoint is None
    with pytest.raises(EndpointsError, match="no function for variant 'direct'"):
        without.function_name("direct")


def test_invoke_returns_the_handlers_result(local_stage: LocalStage):
    endpoints = read_endpoints(local_stage.endpoints_path)
    assert endpoints.lambda_endpoint is not None
    client = lambda_client(endpoints.lambda_endpoint)
    answer = client.invoke(
        FunctionName=endpoints.function_name("direct"),
        Payload=json.dumps(proxy_event('{"work_ms": 0}')).encode(),
    )
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["status"] == "SUCCEEDED"

    # The stream function by its ARN: an empty batch has no failures to report.
    stream_arn = local_stage.functions["storage_first"].arn
    answer = client.invoke(FunctionName=stream_arn, Payload=b'{"Records": []}')
    assert answer["StatusCode"] == 200
    assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}


def test_function_error_is_200_with_the_error_payload(local_stage: LocalStage):
    client = lambda_client(local_stage.gateway_url)
    answer = client.invoke(FunctionName=local_stage.functions["direct"].name, Payload=b"{}")
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "KeyError"
    assert "requestContext" in error["errorMessage"]
    assert isinstance(error["stackTrace"], list)


def test_unknown_function_and_bad_payload(local_stage: LocalStage):
    client = lambda_client(local_stage.gateway_url)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "no-such-function" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName=local_stage.functions["direct"].name, Payload=b"{not json")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"


BLOCKING_HANDLER = """
import time
from pathlib import Path

def handler(event, context):
    while not Path(event["wait_for"]).exists():
        time.sleep(0.01)
    return {"released": True}
"""


def test_a_busy_function_is_throttled_with_429(dynamodb_local: DynamoDBLocal, tmp_path: Path):
    (tmp_path / "blocking_handler.py").write_text(BLOCKING_HANDLER)
    function = LocalFunction(
        name="invoke-api-blocking",
        variant="direct",
        handler="blocking_handler.handler",
        environment={},
        timeout_s=30,
        memory_mb=128,
        concurrency=1,
        code_dir=tmp_path,
    )
    release = tmp_path / "release"
    with (
        function,
        Gateway(
            dynamodb_endpoint=dynamodb_local.endpoint_url,
            tables={"direct": "unused", "storage_first": "unused"},
            direct_function=function,
        ) as gateway,
    ):
        client = lambda_client(gateway.url)
        results: list[dict[str, Any]] = []
        first = threading.Thread(
            target=lambda: results.append(
                client.invoke(
                    FunctionName=function.name,
                    Payload=json.dumps({"wait_for": str(release)}).encode(),
                )
            )
        )
        first.start()
        deadline = time.monotonic() + 20
        while function.busy_count < 1:
            assert time.monotonic() < deadline, "the first invocation never started"
            time.sleep(0.01)
        with pytest.raises(ClientError) as caught:
            client.invoke(FunctionName=function.name, Payload=b'{"wait_for": "/"}')
        assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        release.touch()
        first.join(timeout=20)
        assert json.loads(results[0]["Payload"].read()) == {"released": True}
