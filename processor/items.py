"""Low-level DynamoDB attribute values of a stored request item, both ways.

The handlers use the client API (not the resource) so numbers never pass through floats: an
attribute value is ``{"N": "123"}`` or ``{"S": "text"}``. Item attributes (the contract's):
id, run_id, status (PENDING|SUCCEEDED|FAILED), attempts, duplicates, accepted_at_ms,
started_at_ms, processed_at_ms, error, cold_start, request (body string), ttl (epoch s).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "FAILED",
    "PENDING",
    "SUCCEEDED",
    "TERMINAL",
    "boolean",
    "number",
    "read_int",
    "read_str",
    "string",
]

PENDING = "PENDING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TERMINAL = (SUCCEEDED, FAILED)

AttributeValue = dict[str, Any]


def number(value: int) -> AttributeValue:
    return {"N": str(int(value))}


def string(value: str) -> AttributeValue:
    return {"S": value}


def boolean(value: bool) -> AttributeValue:
    return {"BOOL": value}


def read_int(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    """An integer attribute of a low-level item (``{"N": "12"}``), or ``default``."""
    value = item.get(name)
    if not value or "N" not in value:
        return default
    return int(Decimal(value["N"]))


def read_str(item: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    """A string attribute of a low-level item (``{"S": "x"}``), or ``default``."""
    value = item.get(name)
    if not value or "S" not in value:
        return default
    return str(value["S"])
