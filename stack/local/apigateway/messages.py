"""The values the local API Gateway's parts pass each other: a request, a response, the
answers API Gateway gives on its own (gateway responses), and header helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "INTERNAL_ERROR_BODY",
    "JSON",
    "GatewayRequest",
    "GatewayResponse",
    "error_response",
    "header",
    "is_json",
    "request_time",
]

JSON = "application/json"
INTERNAL_ERROR_BODY = b'{"message": "Internal server error"}'


@dataclass(frozen=True)
class GatewayRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str


@dataclass
class GatewayResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    integration_latency_ms: float | None = None
    api_gateway: bool = True
    """False for Lambda Invoke API calls, which API Gateway's metrics do not count."""


def error_response(status: int, message: str, error_type: str | None = None) -> GatewayResponse:
    """A gateway response: ``{"message": ...}`` with ``x-amzn-ErrorType`` when given."""
    headers = [("Content-Type", JSON)]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return GatewayResponse(status, json.dumps({"message": message}).encode(), headers)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def request_time(epoch_ms: int) -> str:
    """$context.requestTime: CLF-formatted, e.g. 28/Nov/2026:12:34:05 +0000."""
    t = time.gmtime(epoch_ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:" + time.strftime(
        "%H:%M:%S +0000", t
    )


def is_json(headers: Mapping[str, str]) -> bool:
    """Whether the body's media type selects the application/json template (none does too)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            media_type = value.split(";")[0].strip().lower()
            return media_type in ("", "application/json")
    return True


def header(headers: list[tuple[str, str]], name: str) -> str:
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return ""
