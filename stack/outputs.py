"""From the deployed stacks' CloudFormation outputs to the endpoints file (target "aws").

Also the names both sides agree on (stack names, stage names, output keys), kept here so that
the command line can use them without importing the CDK (jsii start-up takes seconds).

:func:`read_stack_outputs` asks CloudFormation (``describe_stacks``); :func:`endpoints_from_outputs`
is the pure mapping, so it is tested without AWS; :func:`fetch_endpoints` does both for the two
variants. A stack that is missing or not in a usable state raises StackNotDeployedError saying
what to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from asyncbench.errors import StackNotDeployedError
from stack.config import StackConfig
from stack.endpoints import Endpoints, VariantEndpoint
from stack.variants import STAGE_NAMES

__all__ = [
    "AWS_RESOURCES_KEY",
    "FUNCTIONS_KEY",
    "OUTPUT_KEYS",
    "STAGE_NAMES",
    "USABLE_STATUSES",
    "endpoints_from_outputs",
    "fetch_endpoints",
    "read_stack_outputs",
    "stack_names",
]

# API stage names are the variants' path segments (CONTRACT.md: base_url ends in them);
# re-exported from their one home.

# CloudFormation output keys: written by stack.stacks, read back here after a deploy.
OUTPUT_KEYS = {
    "base_url": "BaseUrl",
    "table": "TableName",
    "region": "Region",
    "function_name": "FunctionName",
    "log_group": "LogGroupName",
    "api_id": "ApiId",
    "api_name": "ApiName",
    "stage": "StageName",
    "failure_queue_url": "FailureQueueUrl",
    "failure_queue_arn": "FailureQueueArn",
    "event_source_mapping_id": "EventSourceMappingId",
    "account_role_arn": "ApiGatewayAccountRoleArn",
}


def stack_names(config: StackConfig) -> dict[str, str]:
    """CloudFormation stack name per variant key."""
    return {variant: f"{config.name_prefix}-{stage}" for variant, stage in STAGE_NAMES.items()}


# Extra key of the endpoints file with the resource names a run needs for CloudWatch metrics.
AWS_RESOURCES_KEY = "aws_resources"
# Extra key with each variant's processor function name (``Endpoints.function_name``): what
# `asyncbench redrive` invokes.
FUNCTIONS_KEY = "functions"

# States in which the stack's resources exist and match its outputs.
USABLE_STATUSES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)

_DEPLOY_HINT = "run `asyncbench deploy` first"


def read_stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of a deployed stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if "does not exist" in message:
            raise StackNotDeployedError(
                f"stack {stack_name} is not deployed; {_DEPLOY_HINT}"
            ) from None
        raise
    status = stacks[0]["StackStatus"]
    if status not in USABLE_STATUSES:
        raise StackNotDeployedError(
            f"stack {stack_name} is in state {status}, not deployed; {_DEPLOY_HINT} "
            "(after the stack's current operation has finished)"
        )
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def _require(outputs: Mapping[str, str], key: str, stack_name: str) -> str:
    output_key = OUTPUT_KEYS[key]
    try:
        return outputs[output_key]
    except KeyError:
        raise StackNotDeployedError(
            f"stack {stack_name} has no output {output_key} (deployed by an older asyncbench?); "
            f"{_DEPLOY_HINT}"
        ) from None


def endpoints_from_outputs(
    outputs: Mapping[str, Mapping[str, str]], stack_names: Mapping[str, str]
) -> Endpoints:
    """The endpoints file of an AWS deployment from each variant's stack outputs."""
    variants: dict[str, VariantEndpoint] = {}
    resources: dict[str, dict[str, str]] = {}
    regions = set()
    for variant, stack_name in stack_names.items():
        values = outputs[variant]

        def get(key: str, values: Mapping[str, str] = values, name: str = stack_name) -> str:
            return _require(values, key, name)

        variants[variant] = VariantEndpoint(
            base_url=get("base_url").rstrip("/"),
            table=get("table"),
            failure_destination=(get("failure_queue_url") if variant == "storage_first" else None),
        )
        regions.add(get("region"))
        resources[variant] = {
            "stack_name": stack_name,
            "function_name": get("function_name"),
            "log_group": get("log_group"),
            "api_id": get("api_id"),
            "api_name": get("api_name"),
            "stage": get("stage"),
        }
        if OUTPUT_KEYS["account_role_arn"] in values:
            resources[variant]["account_role_arn"] = get("account_role_arn")
        if variant == "storage_first":
            resources[variant]["failure_queue_arn"] = get("failure_queue_arn")
            resources[variant]["event_source_mapping_id"] = get("event_source_mapping_id")
    if len(regions) != 1:
        raise StackNotDeployedError(
            f"the variants' stacks are in different regions ({', '.join(sorted(regions))}); "
            "destroy them and deploy both with one --region"
        )
    return Endpoints(
        target="aws",
        region=regions.pop(),
        variants=variants,
        extra={
            AWS_RESOURCES_KEY: resources,
            FUNCTIONS_KEY: {
                variant: names["function_name"] for variant, names in resources.items()
            },
        },
    )


def fetch_endpoints(cloudformation: Any, stack_names: Mapping[str, str]) -> Endpoints:
    """Read both variants' stacks from CloudFormation and build the endpoints file."""
    outputs = {
        variant: read_stack_outputs(cloudformation, name) for variant, name in stack_names.items()
    }
    return endpoints_from_outputs(outputs, stack_names)
