"""API Gateway's mapping-template variables: ``$input``, ``$util``, ``$context``.

As documented in "API Gateway mapping template and access logging variable reference"
(docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html).
``$util.escapeJavaScript`` is commons-lang 2 ``StringEscapeUtils.escapeJavaScript``: it escapes
``'`` as ``\\'`` (not valid JSON) and ``/`` as ``\\/``, control characters as ``\\b \\t \\n \\f
\\r`` or ``\\u00XX``, and every non-ASCII UTF-16 unit as ``\\uXXXX`` (upper-case hex).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stack.local.apigateway.vtl.java import JsonList, MethodMissing

__all__ = [
    "Context",
    "Input",
    "Util",
    "escape_javascript",
    "json_path",
]

_SHORT_ESCAPES = {"\b": "\\b", "\n": "\\n", "\t": "\\t", "\f": "\\f", "\r": "\\r"}
_SHORT_ESCAPES |= {"'": "\\'", '"': '\\"', "\\": "\\\\", "/": "\\/"}
_NEEDS_ESCAPE = re.compile(r"['\"\\/\x00-\x1f\x80-\U0010ffff]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code > 0xFFFF:  # Java sees a surrogate pair: two \\uXXXX escapes
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def escape_javascript(text: str | None) -> str | None:
    """commons-lang 2 StringEscapeUtils.escapeJavaScript (null stays null)."""
    if text is None:
        return None
    return _NEEDS_ESCAPE.sub(_escape_char, text)


# --- JSONPath (the subset templates use: $, .name, ['name'], [index], [*], ..name) ---

_PATH_TOKEN = re.compile(
    r"\.\.(?P<deep>[^.\[]+)|\.(?P<name>[^.\[]+)|\[\s*(?:'(?P<quoted>[^']*)'|\"(?P<dquoted>[^\"]*)\""
    r"|(?P<index>-?\d+)|(?P<star>\*))\s*\]"
)

_MISSING = object()


def json_path(document: Any, path: str) -> Any:
    """Evaluate a JSONPath on parsed JSON; None when nothing matches."""
    path = path.strip()
    if not path.startswith("$"):
        raise MethodMissing(f"JSONPath must start with $: {path!r}")
    values: list[Any] = [document]
    position = 1
    multiple = False
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match:
            raise MethodMissing(f"invalid JSONPath {path!r}")
        position = match.end()
        if match.group("star") is not None or match.group("deep") is not None:
            multiple = True
        values = [v for value in values for v in _select(value, match)]
    if multiple:
        return JsonList(values)
    return values[0] if values else None


def _select(value: Any, match: re.Match[str]) -> list[Any]:
    if match.group("star") is not None:
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if match.group("deep") is not None:
        return list(_descend(value, match.group("deep")))
    index = match.group("index")
    if index is not None:
        if isinstance(value, list) and -len(value) <= int(index) < len(value):
            return [value[int(index)]]
        return []
    key = next(
        k
        for k in (match.group("name"), match.group("quoted"), match.group("dquoted"))
        if k is not None
    )
    if isinstance(value, dict) and key in value:
        return [value[key]]
    return []


def _descend(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if key in value:
            yield value[key]
        for child in value.values():
            yield from _descend(child, key)
    elif isinstance(value, list):
        for child in value:
            yield from _descend(child, key)


# --- $input ---


@dataclass
class Input:
    """``$input``: the body (request body, or the integration response in a response template)
    and the method request's parameters."""

    body: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query_params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    _parsed: Any = _MISSING

    def _document(self) -> Any:
        if self._parsed is _MISSING:
            # API Gateway evaluates JSONPath on an empty body as on an empty object; its
            # arrays print as JSON (JsonList).
            self._parsed = (
                json.loads(self.body, object_pairs_hook=dict, parse_constant=float)
                if self.body.strip()
                else {}
            )
            self._parsed = _json_lists(self._parsed)
        return self._parsed

    def vtl_get(self, name: str) -> Any:
        if name == "body":
            # AWS recorded: $input.body of an empty body is "{}".
            return self.body if self.body else "{}"
        raise MethodMissing(name)

    def vtl_call(self, name: str, args: list[Any]) -> Any:
        if name in ("path", "json") and len(args) == 1:
            # AWS recorded: no match, or a body that is not JSON, gives "" (not null).
            try:
                found = json_path(self._document(), str(args[0]))
            except ValueError:
                return ""
            if found is None:
                return ""
            if name == "path":
                return found
            return json.dumps(found, ensure_ascii=False, separators=(",", ":"))
        if name == "params" and not args:
            return {
                "path": dict(self.path_params),
                "querystring": dict(self.query_params),
                "header": dict(self.headers),
            }
        if name == "params" and len(args) == 1:
            return self.param(str(args[0]))
        if name == "getBody" and not args:
            return self.body
        raise MethodMissing(name)

    def param(self, name: str) -> str:
        """Path, then query string, then header (headers match any case); "" when absent."""
        for source in (self.path_params, self.query_params):
            if name in source:
                return source[name]
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""


def _json_lists(value: Any) -> Any:
    if isinstance(value, list):
        return JsonList(_json_lists(item) for item in value)
    if isinstance(value, dict):
        return {key: _json_lists(item) for key, item in value.items()}
    return value


# --- $util ---


class Util:
    """``$util``: escapeJavaScript, parseJson, urlEncode/urlDecode, base64Encode/Decode."""

    def vtl_call(self, name: str, args: list[Any]) -> Any:
        if len(args) != 1:
            raise MethodMissing(name)
        value = args[0]
        if name == "escapeJavaScript":
            return escape_javascript(None if value is None else _text(value))
        if value is None:
            return None
        text = _text(value)
        if name == "parseJson":
            try:
                return json.loads(text)
            except ValueError as error:
                raise MethodMissing("not JSON") from error
        if name == "urlEncode":
            # java.net.URLEncoder: space -> '+', keeps letters, digits and . - * _ (not ~)
            return urllib.parse.quote_plus(text, safe="*").replace("~", "%7E")
        if name == "urlDecode":
            return urllib.parse.unquote_plus(text)
        if name == "base64Encode":
            return base64.b64encode(text.encode()).decode("ascii")
        if name == "base64Decode":
            return base64.b64decode(text).decode("utf-8", "replace")
        raise MethodMissing(name)

    def vtl_get(self, name: str) -> Any:
        raise MethodMissing(name)


def _text(value: Any) -> str:
    from stack.local.apigateway.vtl.java import to_string

    return to_string(value)


# --- $context ---

_CONTEXT_ATTRIBUTES = {
    "requestId": "request_id",
    "extendedRequestId": "request_id",
    "requestTimeEpoch": "request_time_epoch_ms",
    "requestTime": "request_time",
    "domainName": "domain_name",
    "stage": "stage",
    "resourcePath": "resource_path",
    "path": "path",
    "httpMethod": "http_method",
    "accountId": "account_id",
    "apiId": "api_id",
    "protocol": "protocol",
    "responseOverride": "response_override",
}


@dataclass
class Context:
    """``$context``: request facts plus the writable ``responseOverride``."""

    request_id: str
    request_time_epoch_ms: int
    request_time: str
    domain_name: str
    stage: str
    resource_path: str
    path: str
    http_method: str
    source_ip: str
    user_agent: str = ""
    account_id: str = "000000000000"
    api_id: str = "local"
    protocol: str = "HTTP/1.1"
    response_override: dict[str, Any] = field(
        default_factory=lambda: {"status": None, "header": {}}
    )

    def vtl_get(self, name: str) -> Any:
        attribute = _CONTEXT_ATTRIBUTES.get(name)
        if attribute is not None:
            return getattr(self, attribute)
        if name == "domainPrefix":
            return self.domain_name.split(".")[0]
        if name == "identity":
            return {
                "sourceIp": self.source_ip,
                "userAgent": self.user_agent,
                "caller": None,
                "user": None,
                "userArn": None,
                "accountId": None,
                "apiKey": None,
                "accessKey": None,
                "cognitoIdentityId": None,
            }
        raise MethodMissing(name)

    def vtl_call(self, name: str, args: list[Any]) -> Any:
        if name == "get" and len(args) == 1:
            return self.vtl_get(str(args[0]))
        raise MethodMissing(name)

    @property
    def status_override(self) -> int | None:
        """The status a template set with ``$context.responseOverride.status``, if valid."""
        status = self.response_override.get("status")
        try:
            return int(status) if status is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def header_overrides(self) -> dict[str, str]:
        headers = self.response_override.get("header") or {}
        return {str(k): str(v) for k, v in headers.items() if v is not None}
