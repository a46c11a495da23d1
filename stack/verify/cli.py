"""``asyncbench verify [--target local|aws] [--endpoints FILE]``: one row per check, non-zero
on any mismatch. Run it right after ``deploy`` (or ``local up``), before spending on load."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from asyncbench.errors import AsyncbenchError, EndpointsError
from stack.config import StackConfig, from_mapping, load_config
from stack.endpoints import Endpoints, read_endpoints
from stack.verify.checks import Check, StageClient, behaviour_checks

__all__ = ["EXIT_MISMATCH", "register", "run_verify"]

EXIT_MISMATCH = 1
_AWS_RESOURCES_KEY = "aws_resources"  # stack.outputs.AWS_RESOURCES_KEY, without importing botocore


def _function_name(endpoints: Endpoints, variant: str) -> str | None:
    try:
        return endpoints.function_name(variant)
    except EndpointsError:
        resources = endpoints.extra.get(_AWS_RESOURCES_KEY) or {}
        name = (resources.get(variant) or {}).get("function_name")
        return str(name) if name else None


def _lambda_client(endpoints: Endpoints, profile: str | None) -> Any:
    import boto3

    if endpoints.target == "local":
        from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION

        if endpoints.lambda_endpoint is None:
            return None
        return boto3.client(
            "lambda",
            endpoint_url=endpoints.lambda_endpoint,
            region_name=LOCAL_REGION,
            **LOCAL_CREDENTIALS,
        )
    session = boto3.Session(profile_name=profile, region_name=endpoints.region)
    return session.client("lambda")


def _invoker(lambda_client: Any, function_name: str) -> Any:
    def invoke(event: dict[str, Any]) -> Any:
        answer = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event))
        payload = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            return {"FunctionError": answer["FunctionError"], **(payload or {})}
        return payload

    return invoke


def _config(endpoints: Endpoints, args: argparse.Namespace) -> StackConfig:
    recorded = endpoints.extra.get("stack_config")
    if isinstance(recorded, dict) and not args.config and not args.set:
        return from_mapping(recorded, source="the endpoints file's stack_config")
    return load_config(args.config, args.set or ())


def run_verify(
    endpoints: Endpoints, config: StackConfig, *, profile: str | None = None
) -> list[Check]:
    """Every check for this stage, behavioural first, then (AWS) the settings read back."""
    lambda_client = _lambda_client(endpoints, profile)
    stream_function = _function_name(endpoints, "storage_first")
    invoker = (
        _invoker(lambda_client, stream_function)
        if lambda_client is not None and stream_function is not None
        else None
    )
    checks = behaviour_checks(StageClient(endpoints), stream_invoker=invoker)
    if endpoints.target == "aws":
        from stack.verify.readback import function_checks, mapping_checks

        resources = endpoints.extra.get(_AWS_RESOURCES_KEY) or {}
        storage = resources.get("storage_first") or {}
        mapping_id = storage.get("event_source_mapping_id")
        if mapping_id:
            checks += mapping_checks(
                lambda_client, mapping_id, config, storage.get("failure_queue_arn")
            )
        else:
            checks.append(Check("mapping settings", None, "skipped: no mapping id in endpoints"))
        for variant in ("direct", "storage_first"):
            name = _function_name(endpoints, variant)
            if name is None:
                checks.append(Check(f"{variant} function", None, "skipped: no function name"))
                continue
            table = endpoints.variant(variant).table
            checks += function_checks(lambda_client, variant, name, config, table)
    return checks


def format_row(check: Check) -> str:
    verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[check.passed]
    return f"{verdict}  {check.name:<62}  {check.detail}"


def _handle(args: argparse.Namespace) -> int:
    endpoints = read_endpoints(args.endpoints, target=args.target)
    if endpoints.target != args.target:
        raise AsyncbenchError(
            f"the endpoints file is for target {endpoints.target!r}, not {args.target!r}; "
            "pass --target to match it"
        )
    config = _config(endpoints, args)
    started = time.monotonic()
    print(f"verifying the {args.target} stage ({len(endpoints.variants)} variants)...", flush=True)
    checks = run_verify(endpoints, config, profile=args.profile)
    for check in checks:
        print(format_row(check), flush=True)
    failed = [check for check in checks if check.passed is False]
    skipped = [check for check in checks if check.passed is None]
    print(
        f"verify: {len(checks)} checks, {len(failed)} failed, {len(skipped)} skipped "
        f"in {time.monotonic() - started:.0f} s"
    )
    return EXIT_MISMATCH if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a running stage's behaviour in about a minute (run it before load)",
        description="Send requests through both variants and compare what comes back with the "
        "contract: hostile bodies round-trip, status codes, poison and outage outcomes, no "
        "double processing; on AWS also read back the deployed mapping and functions. One row "
        "per check; exit 1 on any mismatch.",
    )
    parser.add_argument("--target", choices=("local", "aws"), default="local")
    parser.add_argument("--endpoints", type=Path, help="endpoints file (default: the target's)")
    parser.add_argument(
        "--config", type=Path, help="stack config file to compare AWS settings with"
    )
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    parser.add_argument("--profile", help="AWS profile (target aws)")
    parser.set_defaults(handler=_handle)
