"""On AWS: the deployed event source mapping and functions read back, compared with the config.

``GetEventSourceMapping`` and ``GetFunctionConfiguration`` (plus ``GetFunctionConcurrency``)
answer what AWS actually runs; a stack deployed from another config, or changed by hand, shows
up here before any money is spent on load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.variants import HANDLERS
from stack.verify.checks import Check

__all__ = ["function_checks", "mapping_checks"]


def mapping_checks(
    lambda_client: Any, mapping_id: str, config: StackConfig, failure_queue_arn: str | None
) -> list[Check]:
    """One row per setting of the stream mapping the stack sets."""
    mapping = lambda_client.get_event_source_mapping(UUID=mapping_id)
    filters = [
        json.loads(entry.get("Pattern", "null"))
        for entry in (mapping.get("FilterCriteria") or {}).get("Filters", [])
    ]
    expected: dict[str, tuple[Any, Any]] = {
        "BatchSize": (mapping.get("BatchSize"), config.batch_size),
        "MaximumBatchingWindowInSeconds": (
            mapping.get("MaximumBatchingWindowInSeconds"),
            config.batching_window_s,
        ),
        "BisectBatchOnFunctionError": (
            mapping.get("BisectBatchOnFunctionError"),
            config.bisect_on_error,
        ),
        "MaximumRetryAttempts": (mapping.get("MaximumRetryAttempts"), config.retry_attempts),
        "MaximumRecordAgeInSeconds": (
            mapping.get("MaximumRecordAgeInSeconds"),
            config.max_record_age_s,
        ),
        "ParallelizationFactor": (
            mapping.get("ParallelizationFactor"),
            config.parallelization_factor,
        ),
        "StartingPosition": (mapping.get("StartingPosition"), "TRIM_HORIZON"),
        "FunctionResponseTypes": (
            mapping.get("FunctionResponseTypes"),
            ["ReportBatchItemFailures"],
        ),
        "FilterCriteria": (filters, [STREAM_FILTER_PATTERN]),
    }
    if failure_queue_arn is not None:
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        expected["DestinationConfig.OnFailure"] = (destination, failure_queue_arn)
    checks = [_compare(f"mapping {key}", actual, want) for key, (actual, want) in expected.items()]
    state = mapping.get("State")
    checks.append(Check("mapping State", state in ("Enabled", "Enabling"), f"{state}"))
    return checks


def function_checks(
    lambda_client: Any, variant: str, function_name: str, config: StackConfig, table: str
) -> list[Check]:
    """One row per setting of a variant's function the stack sets."""
    function = lambda_client.get_function_configuration(FunctionName=function_name)
    environment = (function.get("Environment") or {}).get("Variables") or {}
    wanted_environment = config.processor_environment(table)
    differing = {
        key: environment.get(key)
        for key, value in wanted_environment.items()
        if environment.get(key) != value
    }
    label = "storage-first" if variant == "storage_first" else variant
    checks = [
        _compare(f"{label} function Handler", function.get("Handler"), HANDLERS[variant]),
        _compare(f"{label} function MemorySize", function.get("MemorySize"), config.memory_mb),
        _compare(f"{label} function Timeout", function.get("Timeout"), config.timeout_s),
        _compare(
            f"{label} function Architectures",
            function.get("Architectures"),
            [config.architecture],
        ),
        Check(
            f"{label} function environment",
            not differing,
            f"differs: {differing}" if differing else f"{len(wanted_environment)} variables",
        ),
    ]
    concurrency = lambda_client.get_function_concurrency(FunctionName=function_name)
    checks.append(
        _compare(
            f"{label} function reserved concurrency",
            concurrency.get("ReservedConcurrentExecutions"),
            config.reserved_concurrency,
        )
    )
    return checks


def _compare(name: str, actual: Any, expected: Any) -> Check:
    if actual == expected:
        return Check(name, True, _show(actual))
    return Check(name, False, f"deployed {_show(actual)}, config {_show(expected)}")


def _show(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
