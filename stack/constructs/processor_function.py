"""The processor function of a variant, built from the shared StackConfig."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stack.config import StackConfig
from stack.constructs.nag import acknowledge
from stack.constructs.processor_asset import processor_code

__all__ = ["PYTHON_RUNTIME", "ProcessorFunction", "retention_days"]

# Pinned, not "latest": the handlers are tested on this version (see the cdk-nag L1 note).
PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_12

_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}

_RETENTION = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS",
    30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS",
    150: "FIVE_MONTHS", 180: "SIX_MONTHS", 365: "ONE_YEAR", 400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS", 1827: "FIVE_YEARS",
    2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip


def retention_days(days: int) -> logs.RetentionDays:
    """CloudWatch's retention enum for a number of days (StackConfig validated the number)."""
    return logs.RetentionDays[_RETENTION[days]]


class ProcessorFunction(Construct):
    """A Python Lambda running ``handler`` with its own role and log group.

    The role starts empty except for writing to its own log group (no AWS managed policy);
    the stack grants table, stream and queue access on top. ``self.function``,
    ``self.role`` and ``self.log_group`` are exposed for that.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        config: StackConfig,
        table_name: str,
        description: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention_days(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {handler}",
        )
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every log group): this group only.
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=PYTHON_RUNTIME,
            architecture=_ARCHITECTURES[config.architecture],
            handler=handler,
            code=processor_code(self),
            memory_size=config.memory_mb,
            timeout=Duration.seconds(config.timeout_s),
            reserved_concurrent_executions=config.reserved_concurrency,
            environment=config.processor_environment(table_name),
            role=self.role,
            log_group=self.log_group,
            description=description,
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"Runtime pinned to {PYTHON_RUNTIME.name}, the version the handlers are tested "
            "against; a runtime bump changes cold starts, which this suite measures, so it is a "
            "deliberate change, not an automatic one.",
        )
