"""Lambda event filtering (FilterCriteria) for the local event source mapping.

Rules as the Lambda developer guide defines them ("Control which events Lambda sends to your
function", invocation-eventfiltering): a record is delivered when it matches ANY of the
mapping's filter patterns; a pattern matches when EVERY key matches; a nested object descends
into the record; a list holds alternatives, each an exact value (string, number, null) or a
comparison object: ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but``,
``numeric``, ``exists``. When the record's field is itself a list, matching any element is
enough. For DynamoDB the record is the stream record as delivered (``eventName``,
``dynamodb.NewImage.<attr>.S`` ...).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from asyncbench.errors import ConfigError

__all__ = ["matches_any", "matches_pattern"]

_MISSING = object()

_NUMERIC_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def matches_any(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """True when no patterns are set (no filtering) or at least one pattern matches."""
    return not patterns or any(matches_pattern(pattern, record) for pattern in patterns)


def matches_pattern(pattern: Mapping[str, Any], record: Any) -> bool:
    """True when every key of ``pattern`` matches ``record``."""
    for key, rule in pattern.items():
        value = record.get(key, _MISSING) if isinstance(record, Mapping) else _MISSING
        if isinstance(rule, Mapping):
            if value is _MISSING or not _any_element(value, partial(matches_pattern, rule)):
                return False
        elif isinstance(rule, list):
            if not _matches_alternatives(rule, value):
                return False
        else:
            raise ConfigError(
                f"filter pattern key {key!r} must map to a list or an object, got {rule!r}"
            )
    return True


def _any_element(value: Any, test: Callable[[Any], bool]) -> bool:
    if isinstance(value, list):
        return any(test(element) for element in value)
    return test(value)


def _matches_alternatives(alternatives: list[Any], value: Any) -> bool:
    for alternative in alternatives:
        if isinstance(alternative, Mapping):
            if _matches_comparison(alternative, value):
                return True
        elif value is not _MISSING and _any_element(value, partial(_equal, expected=alternative)):
            return True
    return False


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(value) == float(expected)
    return bool(value == expected) and type(value) is type(expected)


def _matches_comparison(comparison: Mapping[str, Any], value: Any) -> bool:
    if len(comparison) != 1:
        raise ConfigError(f"filter comparison {dict(comparison)!r} must have exactly one key")
    ((kind, operand),) = comparison.items()
    if kind == "exists":
        return (value is not _MISSING) is bool(operand)
    if value is _MISSING:
        return False
    if kind == "prefix":
        return _any_element(value, lambda v: isinstance(v, str) and v.startswith(operand))
    if kind == "suffix":
        return _any_element(value, lambda v: isinstance(v, str) and v.endswith(operand))
    if kind == "equals-ignore-case":
        return _any_element(
            value, lambda v: isinstance(v, str) and v.casefold() == str(operand).casefold()
        )
    if kind == "anything-but":
        excluded = operand if isinstance(operand, list) else [operand]
        return not _any_element(value, lambda v: any(_equal(v, e) for e in excluded))
    if kind == "numeric":
        return _any_element(value, lambda v: _numeric(operand, v))
    raise ConfigError(f"filter comparison {kind!r} is not supported by the local stage")


def _numeric(conditions: Sequence[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    pairs = zip(conditions[0::2], conditions[1::2], strict=True)
    return all(_NUMERIC_OPERATORS[symbol](float(value), float(bound)) for symbol, bound in pairs)
