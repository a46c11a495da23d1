"""The Lambda control-plane calls ``asyncbench tune`` makes, served by the local stage.

On the gateway's port beside the Invoke API, answered as Lambda's API reference shapes them,
applied live to the running stage (DynamoDB Local keeps running):

- ``GET /2015-03-31/event-source-mappings?FunctionName=`` (List), ``GET`` / ``PUT
  /2015-03-31/event-source-mappings/{UUID}`` (Get / Update: BatchSize,
  MaximumBatchingWindowInSeconds, ParallelizationFactor);
- ``GET`` / ``PUT /2015-03-31/functions/{name}/configuration`` (MemorySize; of the environment
  only BATCH_CONCURRENCY may change: the rest is the stage's wiring);
- ``GET /2019-09-30/functions/{name}/concurrency``, ``PUT`` / ``DELETE
  /2017-10-31/functions/{name}/concurrency``.

The stage does the work (:class:`StageControl`); this module only routes and shapes answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote

from asyncbench.errors import AsyncbenchError
from stack.local.awslambda.invoke_api import InvokeResponse

__all__ = ["ControlApi", "StageControl", "is_control_path"]

_MAPPINGS = "/2015-03-31/event-source-mappings"
_FUNCTIONS = ("/2015-03-31/functions/", "/2019-09-30/functions/", "/2017-10-31/functions/")
_JSON = "application/json"

MAPPING_KEYS = {
    "BatchSize": "batch_size",
    "MaximumBatchingWindowInSeconds": "batching_window_s",
    "ParallelizationFactor": "parallelization_factor",
}
ENVIRONMENT_KEYS = {"BATCH_CONCURRENCY": "batch_concurrency"}


class StageControl(Protocol):
    """What the local stage offers the control API."""

    def function_names(self) -> dict[str, str]:
        """Variant -> function name."""
        ...

    def function_configuration(self, variant: str) -> dict[str, Any]: ...

    def mapping_configuration(self) -> dict[str, Any]: ...

    def reserved_concurrency(self, variant: str) -> int | None: ...

    def reconfigure(self, variant: str, overrides: Mapping[str, Any]) -> None:
        """Apply StackConfig overrides to one variant's function (and mapping) live."""
        ...


def is_control_path(path: str) -> bool:
    if path.rstrip("/") == _MAPPINGS or path.startswith(_MAPPINGS + "/"):
        return True
    return path.startswith(_FUNCTIONS) and path.endswith(("/configuration", "/concurrency"))


def _json(status: int, body: Any) -> InvokeResponse:
    return InvokeResponse(status, json.dumps(body).encode(), [("Content-Type", _JSON)])


def _error(status: int, error_type: str, message: str) -> InvokeResponse:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return InvokeResponse(status, body, [("Content-Type", _JSON), ("x-amzn-ErrorType", error_type)])


def _invalid(message: str) -> InvokeResponse:
    return _error(400, "InvalidParameterValueException", message)


class ControlApi:
    """Routes control-plane requests to a :class:`StageControl`."""

    def __init__(self, stage: StageControl) -> None:
        self._stage = stage

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes
    ) -> InvokeResponse:
        try:
            request = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _invalid(f"Could not parse request body into json: {error}")
        try:
            if path.rstrip("/") == _MAPPINGS or path.startswith(_MAPPINGS + "/"):
                return self._mapping(method, path, query, request)
            return self._function(method, path, request)
        except (ValueError, AsyncbenchError) as error:
            return _invalid(str(error))

    def _variant(self, name_or_arn: str) -> str | None:
        name = unquote(name_or_arn).rsplit(":function:", 1)[-1].split(":", 1)[0]
        for variant, function_name in self._stage.function_names().items():
            if function_name == name:
                return variant
        return None

    def _mapping(
        self, method: str, path: str, query: Mapping[str, str], request: Mapping[str, Any]
    ) -> InvokeResponse:
        mapping = self._stage.mapping_configuration()
        uuid = path[len(_MAPPINGS) :].strip("/")
        if not uuid:
            if method != "GET":
                return _error(405, "MethodNotAllowedException", f"{method} is not supported")
            function = query.get("FunctionName")
            wanted = function is None or self._variant(function) == "storage_first"
            return _json(200, {"EventSourceMappings": [mapping] if wanted else []})
        if uuid != mapping["UUID"]:
            return _error(
                404, "ResourceNotFoundException", f"Event source mapping {uuid} not found"
            )
        if method == "GET":
            return _json(200, mapping)
        if method != "PUT":
            return _error(405, "MethodNotAllowedException", f"{method} is not supported")
        unknown = set(request) - set(MAPPING_KEYS)
        if unknown:
            return _invalid(
                f"the local stage changes only {sorted(MAPPING_KEYS)}, not {sorted(unknown)}"
            )
        overrides = {MAPPING_KEYS[key]: value for key, value in request.items()}
        self._stage.reconfigure("storage_first", overrides)
        return _json(202, self._stage.mapping_configuration())

    def _function(self, method: str, path: str, request: Mapping[str, Any]) -> InvokeResponse:
        prefix = next(prefix for prefix in _FUNCTIONS if path.startswith(prefix))
        name, _, resource = path[len(prefix) :].rpartition("/")
        variant = self._variant(name)
        if variant is None:
            return _error(404, "ResourceNotFoundException", f"Function not found: {unquote(name)}")
        if resource == "configuration":
            if method == "GET":
                return _json(200, self._stage.function_configuration(variant))
            if method != "PUT":
                return _error(405, "MethodNotAllowedException", f"{method} is not supported")
            return self._update_function(variant, request)
        if method == "GET":
            reserved = self._stage.reserved_concurrency(variant)
            return _json(
                200, {} if reserved is None else {"ReservedConcurrentExecutions": reserved}
            )
        if method == "PUT":
            value = request.get("ReservedConcurrentExecutions")
            if not isinstance(value, int) or value < 1:
                return _invalid("ReservedConcurrentExecutions must be an integer >= 1")
            self._stage.reconfigure(variant, {"reserved_concurrency": value})
            return _json(200, {"ReservedConcurrentExecutions": value})
        if method == "DELETE":
            self._stage.reconfigure(variant, {"reserved_concurrency": None})
            return InvokeResponse(204, b"", [("Content-Type", _JSON)])
        return _error(405, "MethodNotAllowedException", f"{method} is not supported")

    def _update_function(self, variant: str, request: Mapping[str, Any]) -> InvokeResponse:
        unknown = set(request) - {"FunctionName", "MemorySize", "Environment"}
        if unknown:
            return _invalid(
                f"the local stage changes only MemorySize and Environment, not {sorted(unknown)}"
            )
        overrides: dict[str, Any] = {}
        if "MemorySize" in request:
            overrides["memory_mb"] = request["MemorySize"]
        if "Environment" in request:
            current = self._stage.function_configuration(variant)["Environment"]["Variables"]
            wanted = dict((request["Environment"] or {}).get("Variables") or {})
            changed = {
                key for key in set(current) | set(wanted) if current.get(key) != wanted.get(key)
            }
            if changed - set(ENVIRONMENT_KEYS):
                return _invalid(
                    f"the local stage changes only {sorted(ENVIRONMENT_KEYS)} of the environment, "
                    f"not {sorted(changed - set(ENVIRONMENT_KEYS))}"
                )
            for key in changed:
                overrides[ENVIRONMENT_KEYS[key]] = int(wanted[key])
        self._stage.reconfigure(variant, overrides)
        return _json(200, self._stage.function_configuration(variant))
