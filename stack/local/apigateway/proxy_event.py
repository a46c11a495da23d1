"""API Gateway REST API Lambda proxy integration: the event it sends, the response it accepts.

Event shape: "Input format of a Lambda function for proxy integration"
(docs.aws.amazon.com/apigateway/latest/developerguide/
set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format).
``path`` is the resource path as called, without the stage; ``requestContext.path`` has it.
A map with no entries is null, as AWS sends it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ProxyResponse", "build_proxy_event", "parse_proxy_response"]

_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}


def build_proxy_event(
    *,
    resource: str,
    path: str,
    http_method: str,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    path_parameters: Mapping[str, str],
    stage_variables: Mapping[str, str],
    body: bytes,
    request_context: Mapping[str, Any],
) -> dict[str, Any]:
    """The REST proxy (payload format 1.0) event for one request."""
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value  # the last value wins, as on AWS
        multi_headers.setdefault(name, []).append(value)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    text, is_base64 = _body_text(body)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": http_method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": dict(stage_variables) or None,
        "requestContext": dict(request_context),
        "body": text,
        "isBase64Encoded": is_base64,
    }


def _body_text(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        # Binary media types would be base64; an undeclared binary body is passed the same way.
        return base64.b64encode(body).decode("ascii"), True


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def parse_proxy_response(payload: Any) -> ProxyResponse | None:
    """The HTTP response a function's proxy output describes; None when malformed
    (API Gateway then answers 502 "Internal server error": "Malformed Lambda proxy response")."""
    if not isinstance(payload, dict) or set(payload) - _RESPONSE_KEYS:
        return None
    status = payload.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    headers: list[tuple[str, str]] = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return None
    for name, value in single.items():
        if name not in multi:
            headers.append((str(name), _header_value(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            return None
        headers.extend((str(name), _header_value(value)) for value in values)
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return None
    is_base64 = payload.get("isBase64Encoded", False)
    if not isinstance(is_base64, bool):
        return None
    if body is None:
        data = b""
    elif is_base64:
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            return None
    else:
        data = body.encode("utf-8")
    return ProxyResponse(status, headers, data)


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
