"""Lambda's Invoke API, locally: ``POST /2015-03-31/functions/{FunctionName}/invocations``.

So that boto3's ``lambda`` client (``endpoint_url`` = the stage's ``lambda_endpoint``) can
``invoke`` the stage's functions through the same :class:`LocalFunction` the stage uses: same
environments, concurrency cap and metrics. The answers follow the Invoke API reference
(docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):

- RequestResponse: 200 with the handler's JSON result; a function error is still 200, with
  ``X-Amz-Function-Error: Unhandled`` and the error object (errorType, errorMessage,
  stackTrace) as the payload.
- Event: 202 with an empty body; the invocation runs in the background. DryRun: 204.
- An unknown function: 404 ``ResourceNotFoundException``; a payload that is not JSON: 400
  ``InvalidRequestContentException``; over 6 MB: 413 ``RequestEntityTooLargeException``; all
  environments busy: 429 ``TooManyRequestsException`` (boto3 retries it like AWS's).
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from stack.local.lambda_runtime import LOCAL_ACCOUNT, Invocation, LocalFunction

__all__ = ["INVOKE_PATH_PREFIX", "InvokeApi", "InvokeResponse", "is_invoke_path"]

INVOKE_PATH_PREFIX = "/2015-03-31/functions/"
_INVOCATIONS_SUFFIX = "/invocations"
# Invoke quotas: 6 MB request and response payload for synchronous invocation, 256 KB (now
# 1 MB) for asynchronous (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
_JSON = "application/json"


@dataclass
class InvokeResponse:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def is_invoke_path(path: str) -> bool:
    return path.startswith(INVOKE_PATH_PREFIX) and path.endswith(_INVOCATIONS_SUFFIX)


def _error(status: int, error_type: str, message: str, **fields: Any) -> InvokeResponse:
    body = json.dumps({"Type": "User", "message": message, **fields}).encode()
    return InvokeResponse(status, body, [("Content-Type", _JSON), ("x-amzn-ErrorType", error_type)])


class InvokeApi:
    """The Invoke operation for a set of functions, found by name or ARN."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        executor: concurrent.futures.Executor,
    ) -> None:
        self._functions = {function.name: function for function in functions.values()}
        self._executor = executor

    def _find(self, name_or_arn: str) -> LocalFunction | None:
        # FunctionName may be a name, a full ARN or a partial ARN ("123456789012:function:n").
        name = name_or_arn.rsplit(":function:", 1)[-1].split(":", 1)[0]
        return self._functions.get(name)

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> InvokeResponse:
        name = unquote(path[len(INVOKE_PATH_PREFIX) : -len(_INVOCATIONS_SUFFIX)])
        if method != "POST":
            return _error(405, "MethodNotAllowedException", f"{method} is not supported")
        function = self._find(name)
        qualifier = query.get("Qualifier")
        if function is None or qualifier not in (None, "$LATEST"):
            arn = f"arn:aws:lambda:local:{LOCAL_ACCOUNT}:function:{name}"
            if qualifier:
                arn += f":{qualifier}"
            return _error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        lowered = {key.lower(): value for key, value in headers.items()}
        invocation_type = lowered.get("x-amz-invocation-type", "RequestResponse")
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            return _error(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' "
                "failed to satisfy constraint: Member must satisfy enum value set: "
                "[Event, RequestResponse, DryRun]",
            )
        if len(body) > MAX_SYNC_PAYLOAD_BYTES:
            return _error(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the "
                "InvokeFunction operation",
            )
        try:
            event = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _error(
                400,
                "InvalidRequestContentException",
                f"Could not parse request body into json: {error}",
            )
        if invocation_type == "DryRun":
            return InvokeResponse(204, b"", [("Content-Type", _JSON)])
        if invocation_type == "Event":
            self._executor.submit(function.invoke, event)
            return InvokeResponse(202, b"", [("Content-Type", _JSON)])
        return _answer(function.invoke(event))


def _answer(invocation: Invocation) -> InvokeResponse:
    headers = [
        ("Content-Type", _JSON),
        ("X-Amz-Executed-Version", "$LATEST"),
        ("x-amzn-Remapped-Content-Length", "0"),
    ]
    if invocation.status == "throttled":
        return _error(
            429,
            "TooManyRequestsException",
            invocation.error_message or "Rate Exceeded.",
            Reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        )
    if invocation.status == "ok":
        return InvokeResponse(200, json.dumps(invocation.payload).encode(), headers)
    if invocation.status == "timeout":
        # AWS's payload for a timed-out invocation carries only the message.
        payload: Any = {"errorMessage": invocation.error_message}
    else:
        payload = invocation.payload
    headers.append(("X-Amz-Function-Error", "Unhandled"))
    return InvokeResponse(200, json.dumps(payload).encode(), headers)
