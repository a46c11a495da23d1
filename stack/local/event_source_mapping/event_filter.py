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

__all__ = ["INVALID_PATTERN", "matches_any", "matches_pattern", "validate_patterns"]

INVALID_PATTERN = "InvalidParameterValueException: Invalid filter pattern definition."
_COMPARISONS = {"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"}

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


def validate_patterns(patterns: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a pattern AWS refuses at CreateEventSourceMapping (ConfigError with AWS's
    message), so a bad pattern fails the mapping's creation, not its reader thread later."""
    for pattern in patterns:
        if not isinstance(pattern, Mapping) or not pattern:
            raise ConfigError(f"{INVALID_PATTERN} ({pattern!r})")
        _validate_object(pattern)


def _validate_object(pattern: Mapping[str, Any]) -> None:
    for key, rule in pattern.items():
        if isinstance(rule, Mapping) and rule:
            _validate_object(rule)
        elif isinstance(rule, list) and rule:
            for alternative in rule:
                if isinstance(alternative, Mapping):
                    _validate_comparison(alternative)
                elif isinstance(alternative, list):
                    raise ConfigError(f"{INVALID_PATTERN} (key {key!r}: a list in a list)")
        else:
            raise ConfigError(
                f"{INVALID_PATTERN} (key {key!r} must map to a non-empty list or object)"
            )


def _validate_comparison(comparison: Mapping[str, Any]) -> None:
    if len(comparison) != 1:
        raise ConfigError(f"{INVALID_PATTERN} ({dict(comparison)!r}: one comparison per object)")
    ((kind, operand),) = comparison.items()
    if kind not in _COMPARISONS:
        raise ConfigError(f"{INVALID_PATTERN} (unknown comparison {kind!r})")
    if kind == "exists" and not isinstance(operand, bool):
        raise ConfigError(f"{INVALID_PATTERN} (exists takes true or false)")
    if kind in ("prefix", "suffix", "equals-ignore-case") and not isinstance(operand, str):
        raise ConfigError(f"{INVALID_PATTERN} ({kind} takes a string)")
    if kind == "numeric":
        pairs_ok = (
            isinstance(operand, list)
            and len(operand) in (2, 4)
            and all(symbol in _NUMERIC_OPERATORS for symbol in operand[0::2])
            and all(
                isinstance(bound, int | float) and not isinstance(bound, bool)
                for bound in operand[1::2]
            )
        )
        if not pairs_ok:
            raise ConfigError(f"{INVALID_PATTERN} (numeric {operand!r})")


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
        # "exists" speaks of leaf values: AWS recorded a field holding an object as not
        # existing, so `exists: false` delivers it.
        present = value is not _MISSING and not isinstance(value, Mapping)
        return present is bool(operand)
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
