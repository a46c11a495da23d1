"""Test helpers of the handler tests: a fake clock and context, realistic event factories.

The factories build the shapes AWS sends: a REST API (v1) Lambda proxy event and DynamoDB
stream records (NEW_IMAGE view, as the storage-first table's stream is configured).
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
TABLE = "asyncbench-test-requests"
START_MS = 1_790_000_000_000  # the fake clock's epoch ms at the start of every test
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-28T12:00:00.000"


@dataclass
class FakeClock:
    """Epoch ms that only moves when someone sleeps (or a test moves it)."""

    now: int = START_MS
    sleeps: list[float] = field(default_factory=list)

    def now_ms(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1000)


@dataclass
class FakeContext:
    """The Lambda context fields the handlers use."""

    remaining_ms: int = 30_000
    aws_request_id: str = "lambda-invocation-1"
    function_name: str = "asyncbench-processor"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def get_item(client: Any, request_id: str) -> dict[str, Any] | None:
    """The stored item as plain Python values (numbers as int), or None."""
    item = client.get_item(TableName=TABLE, Key={"id": {"S": request_id}}, ConsistentRead=True)
    if "Item" not in item:
        return None
    plain: dict[str, Any] = {}
    for name, value in item["Item"].items():
        ((kind, raw),) = value.items()
        plain[name] = int(raw) if kind == "N" else raw
    return plain


def all_items(client: Any) -> list[dict[str, Any]]:
    return client.scan(TableName=TABLE, ConsistentRead=True)["Items"]


# --- API Gateway REST proxy (v1) events ---------------------------------------------------

_request_numbers = itertools.count(1)


def proxy_event(
    body: str | None,
    *,
    request_id: str | None = None,
    request_time_epoch: int = START_MS - 5,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST API Lambda proxy event for ``POST /direct/requests`` as API Gateway sends it."""
    request_id = request_id or f"c6af9ac6-7b61-11e6-9a41-93e8{next(_request_numbers):08d}"
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "python-requests/2.32",
        "X-Amzn-Trace-Id": "Root=1-5e66d96f-7491f09xmpl79d18acf3d050",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    if base64_body and body is not None:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return {
        "resource": "/requests",
        "path": "/requests",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": {"tableName": TABLE, "scheme": "https"},
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/requests",
            "httpMethod": "POST",
            "extendedRequestId": "JJbxmplHYosFVYQ=",
            "requestTime": "28/Nov/2026:12:00:00 +0000",
            "path": "/direct/requests",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "direct",
            "domainPrefix": "abc123",
            "requestTimeEpoch": request_time_epoch,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "python-requests/2.32",
                "user": None,
            },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


# --- DynamoDB stream records (NEW_IMAGE) ----------------------------------------------------

_sequence_numbers = itertools.count(4421584500000000017450439091)


def put_pending(
    client: Any,
    request_id: str,
    body: str,
    *,
    accepted_at_ms: int = START_MS - 200,
    attempts: int = 0,
    run_id: str = "run-1",
) -> dict[str, Any]:
    """Store a PENDING item as the storage-first mapping template does; returns its image."""
    image = {
        "id": {"S": request_id},
        "run_id": {"S": run_id},
        "status": {"S": "PENDING"},
        "attempts": {"N": str(attempts)},
        "duplicates": {"N": "0"},
        "accepted_at_ms": {"N": str(accepted_at_ms)},
        "request": {"S": body},
    }
    client.put_item(TableName=TABLE, Item=image)
    return image


def stream_record(
    event_name: str,
    request_id: str,
    *,
    image: dict[str, Any] | None = None,
    created_s: float | None = None,
    ttl_deletion: bool = False,
) -> dict[str, Any]:
    """One stream record as Lambda receives it (NEW_IMAGE view: REMOVE has keys only)."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": (START_MS // 1000) if created_s is None else created_s,
        "Keys": {"id": {"S": request_id}},
        "SequenceNumber": str(next(_sequence_numbers)),
        "SizeBytes": 26 + len(json.dumps(image or {})),
        "StreamViewType": "NEW_IMAGE",
    }
    if image is not None and event_name != "REMOVE":
        dynamodb["NewImage"] = image
    record: dict[str, Any] = {
        "eventID": f"{next(_sequence_numbers):x}"[-32:],
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN,
    }
    if ttl_deletion:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def insert(client: Any, request_id: str, body: str, **item: Any) -> dict[str, Any]:
    """Store a PENDING item and return the INSERT record its write produces."""
    return stream_record("INSERT", request_id, image=put_pending(client, request_id, body, **item))


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sequence_numbers(*records: dict[str, Any]) -> list[dict[str, str]]:
    return [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]} for record in records]
