"""Java semantics the templates rely on: toString, String/Map/List methods, regexes.

Python values stand in for Java ones: str for String, dict for Map, list for List, bool,
int/float for numbers, None for null. String lengths and indexes count UTF-16 code units as
Java does (an emoji is 2 chars long).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = [
    "JsonList",
    "MethodMissing",
    "MethodThrew",
    "call_method",
    "get_property",
    "java_equals",
    "java_regex",
    "java_replacement",
    "to_string",
]


class MethodMissing(Exception):
    """Raised (internally) when a value has no such method or property; renders as null."""


class MethodThrew(Exception):
    """Raised (internally) when a Java method would throw (an index out of range, a bad
    regex): Velocity raises MethodInvocationException and API Gateway fails the request."""


class JsonList(list[Any]):
    """A JSON array as API Gateway's ``$input.path`` returns it: it prints as compact JSON
    (``[{"foo":"bar"}]``), also inside a map, where a Java List would print ``[{foo=bar}]``."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False, separators=(",", ":"))


def to_string(value: Any) -> str:
    """Java's String.valueOf of a value (null -> "null")."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double_to_string(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_string(k)}={to_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, JsonList):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_string(item) for item in value) + "]"
    return str(value)


def _double_to_string(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    # Java switches to "computerized scientific notation" outside [1e-3, 1e7): 1.0E7.
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    fraction = mantissa[1:] or "0"
    power = len(mantissa) - 1 + exponent
    return f"{'-' if sign else ''}{mantissa[0]}.{fraction}E{power}"


def java_equals(left: Any, right: Any) -> bool:
    """Velocity 1.7 '==': numbers by value, same types by equals, else by toString."""
    if left is None or right is None:
        return left is None and right is None
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers):
        if isinstance(left, bool) or isinstance(right, bool):
            return left is right
        return bool(left == right)
    if type(left) is type(right):
        return bool(left == right)
    return to_string(left) == to_string(right)


@lru_cache(maxsize=256)
def java_regex(pattern: str) -> re.Pattern[str]:
    """A Java regex compiled with Python's engine (the common syntax is shared)."""
    # Possessive quantifiers and \p{...} classes are Java-only; templates seldom use them.
    return re.compile(pattern)


@lru_cache(maxsize=256)
def java_replacement(replacement: str) -> str:
    """Java's replaceAll replacement ($1, \\$ escapes) in Python's re.sub syntax."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1].replace("\\", "\\\\"))
            i += 2
        elif char == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            out.append(f"\\g<{replacement[i + 1]}>")
            i += 2
        elif char == "$":
            raise MethodThrew("IllegalArgumentException: Illegal group reference")
        else:
            out.append("\\\\" if char == "\\" else char)
            i += 1
    return "".join(out)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def _from_utf16(data: bytes) -> str:
    return data.decode("utf-16-le", "surrogatepass")


def _length(text: str) -> int:
    return len(text) if text.isascii() else len(_utf16(text)) // 2


def _substring(text: str, start: int, end: int | None = None) -> str:
    if text.isascii():
        if not 0 <= start <= (len(text) if end is None else end) <= len(text):
            raise MethodThrew(f"StringIndexOutOfBoundsException: begin {start}, end {end}")
        return text[start:end]
    units = _utf16(text)
    stop = len(units) // 2 if end is None else end
    if not 0 <= start <= stop <= len(units) // 2:
        raise MethodThrew(f"StringIndexOutOfBoundsException: begin {start}, end {stop}")
    return _from_utf16(units[start * 2 : stop * 2])


def _index_of(text: str, needle: str, start: int = 0) -> int:
    if text.isascii() and needle.isascii():
        return text.find(needle, start)
    found = _utf16(text).find(_utf16(needle), start * 2)
    while found % 2:  # a match must start on a code-unit boundary
        found = _utf16(text).find(_utf16(needle), found + 1)
    return found // 2 if found >= 0 else -1


def _split(text: str, pattern: str, limit: int = 0) -> list[str]:
    parts = java_regex(pattern).split(text, maxsplit=max(limit - 1, 0))
    if limit == 0:
        while parts and parts[-1] == "":
            parts.pop()
    return parts


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "length": _length,
    "isEmpty": lambda s: s == "",
    "contains": lambda s, x: to_string(x) in s,
    "startsWith": lambda s, x, offset=0: s.startswith(x, offset),
    "endsWith": lambda s, x: s.endswith(x),
    "equals": lambda s, x: isinstance(x, str) and s == x,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
    "indexOf": _index_of,
    "lastIndexOf": lambda s, x: (
        s.rfind(x) if s.isascii() else -1 if x not in s else _length(s[: s.rfind(x)])
    ),
    "substring": _substring,
    "charAt": lambda s, i: _substring(s, i, i + 1),
    "concat": lambda s, x: s + x,
    "replace": lambda s, a, b: s.replace(to_string(a), to_string(b)),
    "replaceAll": lambda s, p, r: java_regex(p).sub(java_replacement(r), s),
    "replaceFirst": lambda s, p, r: java_regex(p).sub(java_replacement(r), s, count=1),
    "matches": lambda s, p: java_regex(p).fullmatch(s) is not None,
    "split": _split,
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    "trim": lambda s: s.strip("".join(chr(c) for c in range(33))),
    "toString": lambda s: s,
}

_MAP_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda m, k: m.get(k),
    "containsKey": lambda m, k: k in m,
    "containsValue": lambda m, v: v in m.values(),
    "keySet": lambda m: list(m.keys()),
    "values": lambda m: list(m.values()),
    "size": len,
    "isEmpty": lambda m: not m,
    "put": lambda m, k, v: m.__setitem__(k, v),
    "toString": to_string,
}

_LIST_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda items, i: items[_list_index(items, i)],
    "size": len,
    "isEmpty": lambda items: not items,
    "contains": lambda items, x: x in items,
    "add": lambda items, x: items.append(x) or True,
    "toString": to_string,
}


def _list_index(items: list[Any], index: Any) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError("List.get takes an int")
    if not 0 <= index < len(items):
        raise MethodThrew(f"IndexOutOfBoundsException: Index {index} out of bounds")
    return index


def call_method(value: Any, name: str, args: list[Any]) -> Any:
    """Call a Java method on a value; objects with ``vtl_call`` dispatch themselves."""
    if hasattr(value, "vtl_call"):
        return value.vtl_call(name, args)
    if isinstance(value, str):
        table = _STRING_METHODS
    elif isinstance(value, dict):
        table = _MAP_METHODS
    elif isinstance(value, list):
        table = _LIST_METHODS
    elif name == "toString":
        return to_string(value)
    else:
        raise MethodMissing(name)
    method = table.get(name)
    if method is None:
        raise MethodMissing(name)
    try:
        return method(value, *args)
    except re.error as error:
        raise MethodThrew(f"PatternSyntaxException: {error}") from error
    except (TypeError, IndexError) as error:
        # No overload takes these arguments: Velocity finds no method and yields null.
        raise MethodMissing(name) from error


def get_property(value: Any, name: str) -> Any:
    """``$value.name``: a map key, a getter (``getName``/``isName``) or an object attribute."""
    if isinstance(value, dict):
        return value.get(name)
    if hasattr(value, "vtl_get"):
        return value.vtl_get(name)
    getter = "get" + name[:1].upper() + name[1:]
    for method in (getter, "is" + name[:1].upper() + name[1:]):
        try:
            return call_method(value, method, [])
        except MethodMissing:
            continue
    if isinstance(value, str | list) and name == "empty":
        return call_method(value, "isEmpty", [])
    raise MethodMissing(name)
