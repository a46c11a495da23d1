"""Apply a tune configuration in place, and put the deployed one back: boto3's ``lambda`` client.

The same calls on both targets: AWS, or the local stage's gateway (``lambda_endpoint`` in the
endpoints file), which serves the control-plane calls below on the running stage:

- GetEventSourceMapping / UpdateEventSourceMapping: BatchSize,
  MaximumBatchingWindowInSeconds, ParallelizationFactor (AWS: State "Updating" -> "Enabled");
- GetFunctionConfiguration / UpdateFunctionConfiguration: MemorySize and the environment
  variable BATCH_CONCURRENCY (LastUpdateStatus "InProgress" -> "Successful");
- GetFunctionConcurrency / PutFunctionConcurrency / DeleteFunctionConcurrency.

:class:`LambdaSettings` snapshots what is deployed first; :meth:`LambdaSettings.restore` puts it
back (tune calls it in a ``finally``, so Ctrl-C and failures restore too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncbench.errors import RunError
from stack.endpoints import Endpoints

__all__ = ["LambdaSettings", "lambda_client_for", "mapping_id_for"]

MAPPING_FIELDS = {
    "batch_size": "BatchSize",
    "batching_window_s": "MaximumBatchingWindowInSeconds",
    "parallelization_factor": "ParallelizationFactor",
}
ENVIRONMENT_FIELDS = {"batch_concurrency": "BATCH_CONCURRENCY"}


def lambda_client_for(endpoints: Endpoints) -> Any:
    """A ``lambda`` client for the endpoints' target (the local stage: its gateway)."""
    import boto3

    if endpoints.target == "local":
        from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS

        return boto3.client(
            "lambda",
            endpoint_url=endpoints.lambda_endpoint,
            region_name=endpoints.region,
            **LOCAL_CREDENTIALS,
        )
    return boto3.client("lambda", region_name=endpoints.region)


def mapping_id_for(endpoints: Endpoints, client: Any, function_name: str) -> str:
    """The storage-first mapping's UUID: from the deploy's outputs, else listed by function."""
    resources = endpoints.extra.get("aws_resources") or {}
    known = (resources.get("storage_first") or {}).get("event_source_mapping_id")
    if known:
        return str(known)
    mappings = client.list_event_source_mappings(FunctionName=function_name).get(
        "EventSourceMappings", []
    )
    if len(mappings) != 1:
        raise RunError(
            f"tune: expected one event source mapping on {function_name}, found {len(mappings)}; "
            "redeploy the stack (or restart the local stage)"
        )
    return str(mappings[0]["UUID"])


@dataclass
class LambdaSettings:
    """Reads, changes and restores one function's (and its mapping's) tunable settings."""

    client: Any
    function_name: str
    mapping_id: str | None = None
    timeout_s: float = 300.0
    poll_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    deployed: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """The deployed values of every tunable setting (kept for :meth:`restore`)."""
        function = self.client.get_function_configuration(FunctionName=self.function_name)
        variables = (function.get("Environment") or {}).get("Variables") or {}
        values: dict[str, Any] = {"memory_mb": function.get("MemorySize")}
        for key, name in ENVIRONMENT_FIELDS.items():
            values[key] = int(variables[name]) if name in variables else 1
        concurrency = self.client.get_function_concurrency(FunctionName=self.function_name)
        values["reserved_concurrency"] = concurrency.get("ReservedConcurrentExecutions")
        if self.mapping_id is not None:
            mapping = self.client.get_event_source_mapping(UUID=self.mapping_id)
            for key, name in MAPPING_FIELDS.items():
                if mapping.get(name) is not None:  # moto leaves an unset window out
                    values[key] = mapping.get(name)
        self.deployed = values
        return dict(values)

    def current(self) -> dict[str, Any]:
        """The values now in effect (what :meth:`snapshot` reads, without keeping them)."""
        kept = self.deployed
        try:
            return self.snapshot()
        finally:
            self.deployed = kept

    def apply(self, settings: Mapping[str, Any]) -> None:
        """Change the given settings and wait until the change is active."""
        mapping = {
            MAPPING_FIELDS[key]: value for key, value in settings.items() if key in MAPPING_FIELDS
        }
        if mapping:
            if self.mapping_id is None:
                raise RunError("tune: this function has no event source mapping to change")
            self.client.update_event_source_mapping(UUID=self.mapping_id, **mapping)
            self._wait(
                lambda: self.client.get_event_source_mapping(UUID=self.mapping_id).get("State"),
                done=("Enabled",),
                failed=(),
                what="event source mapping",
            )
        function: dict[str, Any] = {}
        if "memory_mb" in settings:
            function["MemorySize"] = settings["memory_mb"]
        environment = {
            ENVIRONMENT_FIELDS[key]: str(value)
            for key, value in settings.items()
            if key in ENVIRONMENT_FIELDS
        }
        if environment:
            current = self.client.get_function_configuration(FunctionName=self.function_name)
            variables = dict((current.get("Environment") or {}).get("Variables") or {})
            function["Environment"] = {"Variables": {**variables, **environment}}
        if function:
            self.client.update_function_configuration(FunctionName=self.function_name, **function)
            self._wait(
                lambda: self.client.get_function_configuration(FunctionName=self.function_name).get(
                    "LastUpdateStatus", "Successful"
                ),
                done=("Successful",),
                failed=("Failed",),
                what="function configuration",
            )
        if "reserved_concurrency" in settings:
            value = settings["reserved_concurrency"]
            if value is None:
                self.client.delete_function_concurrency(FunctionName=self.function_name)
            else:
                self.client.put_function_concurrency(
                    FunctionName=self.function_name, ReservedConcurrentExecutions=value
                )

    def restore(self) -> None:
        """Put back what :meth:`snapshot` read (only the settings that could have changed)."""
        if self.deployed:
            wanted = {key: value for key, value in self.deployed.items() if key != "memory_mb"}
            if self.mapping_id is None:
                wanted = {key: v for key, v in wanted.items() if key not in MAPPING_FIELDS}
            if self.deployed.get("memory_mb") is not None:
                wanted["memory_mb"] = self.deployed["memory_mb"]
            self.apply(wanted)

    def _wait(
        self, read: Callable[[], Any], *, done: tuple[str, ...], failed: tuple[str, ...], what: str
    ) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            state = read()
            if state in done:
                return
            if state in failed:
                raise RunError(f"tune: the {what} update failed (state {state})")
            if time.monotonic() > deadline:
                raise RunError(
                    f"tune: the {what} update is not active after {self.timeout_s:.0f} s "
                    f"(state {state}); check the function in the console"
                )
            self.sleep(self.poll_s)
