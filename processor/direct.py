"""The direct variant's handler: API Gateway REST proxy (v1) event -> logic -> item -> answer.

- success: PutItem of the SUCCEEDED item (``attribute_not_exists(id)``) and
  ``200 {"requestId", "status": "SUCCEEDED", "attempts", "acceptedAtMs", "processedAtMs"}``;
- permanent failure (invalid body, poison): ``400 {"error", "requestId"}``, nothing written;
- transient failure (outage): the exception propagates, so Lambda counts an error and API
  Gateway answers 502; nothing is stored, which is the seed's point about direct invocation.

A second invocation for a request id that is already stored (a retried invocation) does not
store again: it counts a duplicate on the item and answers from the stored item.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from processor import items
from processor.logic import PermanentFailure, TransientFailure, process
from processor.runtime import Runtime

__all__ = ["handle", "handler", "header"]


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, case-insensitively (the last value when it was sent several times)."""
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted and value is not None:
            return str(value)
    for key, values in (event.get("multiValueHeaders") or {}).items():
        if key.lower() == wanted and values:
            return str(values[-1])
    return None


def _body_text(event: Mapping[str, Any]) -> str | None:
    body = event.get("body")
    if body is None or not event.get("isBase64Encoded"):
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise PermanentFailure("invalid body: not UTF-8 text") from None


def _response(status_code: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": "application/json"},
        "isBase64Encoded": False,
        "body": json.dumps(body, separators=(",", ":")),
    }


def _succeeded_answer(stored: Mapping[str, Any]) -> dict[str, Any]:
    return _response(
        200,
        {
            "requestId": items.read_str(stored, "id"),
            "status": items.read_str(stored, "status"),
            "attempts": items.read_int(stored, "attempts"),
            "acceptedAtMs": items.read_int(stored, "accepted_at_ms"),
            "processedAtMs": items.read_int(stored, "processed_at_ms"),
        },
    )


def handle(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    """Handle one REST proxy event; one structured line per invocation, whatever happens."""
    run_id = header(event, "X-Run-Id")
    with runtime.invocation_line(
        "direct", context, batch_size=1, run_ids=[run_id] if run_id else []
    ):
        return _handle(event, context, runtime)


def _handle(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    cold_start = runtime.begin_invocation()
    settings = runtime.settings
    request_context = event["requestContext"]
    request_id = str(request_context["requestId"])
    accepted_at_ms = int(request_context["requestTimeEpoch"])
    log_fields = {"handler": "direct", "requestId": request_id, "coldStart": cold_start}

    started_at_ms = runtime.now_ms()
    try:
        body = _body_text(event)
        process(body, now_ms=runtime.now_ms, sleep=runtime.sleep)
    except PermanentFailure as failure:
        runtime.log({**log_fields, "outcome": "failed", "error": str(failure)})
        return _response(400, {"error": str(failure), "requestId": request_id})
    except TransientFailure as failure:
        runtime.log({**log_fields, "outcome": "transient_failure", "error": str(failure)})
        raise
    processed_at_ms = runtime.now_ms()

    item = {
        "id": items.string(request_id),
        "run_id": items.string(header(event, "X-Run-Id") or ""),
        "status": items.string(items.SUCCEEDED),
        "attempts": items.number(1),
        "duplicates": items.number(0),
        "accepted_at_ms": items.number(accepted_at_ms),
        "started_at_ms": items.number(started_at_ms),
        "processed_at_ms": items.number(processed_at_ms),
        "cold_start": items.boolean(cold_start),
        "request": items.string(body or ""),
        "ttl": items.number(processed_at_ms // 1000 + settings.ttl_seconds),
    }
    client = runtime.dynamodb
    try:
        client.put_item(
            TableName=settings.table_name,
            Item=item,
            ConditionExpression="attribute_not_exists(id)",
        )
    except client.exceptions.ConditionalCheckFailedException:
        # The same request invoked again: count it, keep the first outcome, answer from it.
        stored = client.update_item(
            TableName=settings.table_name,
            Key={"id": items.string(request_id)},
            UpdateExpression="ADD duplicates :one",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeValues={":one": items.number(1)},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        runtime.log({**log_fields, "outcome": "duplicate"})
        return _succeeded_answer(stored)
    runtime.log(
        {**log_fields, "outcome": "succeeded", "latencyMs": processed_at_ms - accepted_at_ms}
    )
    return _succeeded_answer(item)


# Built at import when the environment is configured, so on AWS the init phase pays for the
# client; otherwise (imported by a test or a tool) on the first invocation.
_runtime: Runtime | None = Runtime.from_environment() if os.environ.get("TABLE_NAME") else None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: ``processor.direct.handler``."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_environment()
    return handle(event, context, _runtime)
