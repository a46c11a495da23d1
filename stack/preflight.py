"""What ``asyncbench deploy`` checks before CloudFormation runs, each refusal one line with the fix.

CloudFormation finds these problems late (minutes into a deploy, then a rollback) and says them
in its own words: "...decreases account's UnreservedConcurrentExecution below its minimum value
of [100]" for a reservation the account cannot fit, "ROLLBACK_COMPLETE state and can not be
updated" for a stack whose first deploy failed. The checks read only (STS, Lambda's
GetAccountSettings, CloudFormation's DescribeStacks, SSM's bootstrap version parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from asyncbench.errors import ConfigError, StackNotDeployedError
from stack.config import StackConfig
from stack.outputs import OUTPUT_KEYS

__all__ = [
    "BOOTSTRAP_VERSION_PARAMETER",
    "UNRESERVED_MINIMUM",
    "check_bootstrap",
    "check_concurrency",
    "check_credentials",
    "check_stack_states",
    "preflight",
]

# Lambda keeps this much of the account's concurrency unreserved, always.
UNRESERVED_MINIMUM = 100
# The default CDK bootstrap (qualifier hnb659fds) publishes its version here.
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"

# States a deploy cannot start from, and what to do about each.
_FAILED_STATES = {
    "ROLLBACK_COMPLETE": "its first deploy failed and it cannot be updated; run "
    "`asyncbench destroy`, then deploy again",
    "ROLLBACK_FAILED": "run `asyncbench destroy` (delete it in the CloudFormation console if "
    "that fails), then deploy again",
    "CREATE_FAILED": "run `asyncbench destroy`, then deploy again",
    "DELETE_FAILED": "delete it in the CloudFormation console (retain what blocks it), then "
    "deploy again",
    "UPDATE_ROLLBACK_FAILED": "continue its rollback (CloudFormation console: Continue update "
    "rollback) or run `asyncbench destroy`, then deploy again",
    "IMPORT_ROLLBACK_FAILED": "run `asyncbench destroy`, then deploy again",
}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def check_credentials(sts: Any, region: str) -> str:
    """The account id the credentials act for in ``region``; one line when AWS refuses them."""
    try:
        return str(sts.get_caller_identity()["Account"])
    except NoCredentialsError:
        raise StackNotDeployedError(
            f"no AWS credentials for region {region}; configure a profile or AWS_* variables"
        ) from None
    except ClientError as error:
        raise StackNotDeployedError(
            f"AWS refused the credentials in region {region} ({_code(error)}); check that they "
            "are current and that the region is enabled for the account (opt-in regions)"
        ) from None
    except BotoCoreError as error:
        raise StackNotDeployedError(
            f"cannot reach AWS in region {region} ({type(error).__name__}); check --region"
        ) from None


def _stack(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(cloudformation.describe_stacks(StackName=name)["Stacks"][0])
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise


def check_stack_states(cloudformation: Any, names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The variants' stacks that exist (by variant); refuses one in a failed or busy state."""
    existing: dict[str, dict[str, Any]] = {}
    for variant, name in names.items():
        stack = _stack(cloudformation, name)
        if stack is None:
            continue
        status = str(stack["StackStatus"])
        if status in _FAILED_STATES:
            raise StackNotDeployedError(
                f"stack {name} is in state {status}: {_FAILED_STATES[status]}"
            )
        if status.endswith("_IN_PROGRESS"):
            raise StackNotDeployedError(
                f"stack {name} is in state {status}; wait for that operation to finish, then "
                "deploy again"
            )
        existing[variant] = stack
    return existing


def check_bootstrap(ssm: Any, region: str) -> None:
    """Refuses ``--no-bootstrap`` on an account/region CDK was never bootstrapped in."""
    try:
        ssm.get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
    except ClientError as error:
        if _code(error) != "ParameterNotFound":
            raise
        raise StackNotDeployedError(
            f"region {region} is not bootstrapped for the CDK (no {BOOTSTRAP_VERSION_PARAMETER}); "
            "deploy without --no-bootstrap, which bootstraps it first"
        ) from None


def _already_reserved(lambda_client: Any, existing: Mapping[str, Mapping[str, Any]]) -> int:
    """Concurrency our own functions reserve now (a redeploy replaces, not adds, it)."""
    total = 0
    for stack in existing.values():
        outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
        function_name = outputs.get(OUTPUT_KEYS["function_name"])
        if not function_name:
            continue
        try:
            answer = lambda_client.get_function_concurrency(FunctionName=function_name)
        except ClientError:
            continue
        total += int(answer.get("ReservedConcurrentExecutions") or 0)
    return total


def check_concurrency(
    lambda_client: Any,
    config: StackConfig,
    region: str,
    existing: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    functions: int = 2,
) -> None:
    """Refuses a reservation that would leave less than 100 unreserved (Lambda's minimum)."""
    if config.reserved_concurrency is None:
        return
    limits = lambda_client.get_account_settings()["AccountLimit"]
    limit = int(limits["ConcurrentExecutions"])
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    wanted = functions * config.reserved_concurrency
    left = unreserved + _already_reserved(lambda_client, existing or {}) - wanted
    if left >= UNRESERVED_MINIMUM:
        return
    raise ConfigError(
        f"the account's Lambda concurrency in {region} is {limit} ({unreserved} unreserved); "
        f"reserving {config.reserved_concurrency} for each of the {functions} functions would "
        f"leave {left}, below the {UNRESERVED_MINIMUM} Lambda keeps unreserved: deploy with "
        "`--set reserved_concurrency=null` (no per-function ceiling, so the throttle scenario "
        f"measures the account's limit of {limit} instead) or ask for a higher limit "
        "(Service Quotas: Lambda concurrent executions)"
    )


def preflight(
    session: Any, config: StackConfig, names: Mapping[str, str], *, bootstrap: bool
) -> str:
    """All checks, in the order a user would fix them; returns the account id."""
    region = str(session.region_name)
    account = check_credentials(session.client("sts"), region)
    existing = check_stack_states(session.client("cloudformation"), names)
    if not bootstrap:
        check_bootstrap(session.client("ssm"), region)
    check_concurrency(session.client("lambda"), config, region, existing)
    return account
