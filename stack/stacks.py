"""The two variants as thin stacks: they wire the constructs and emit the outputs.

``DirectStack``: REST API ``POST /requests`` -> Lambda proxy -> direct handler, which stores the
outcome in its own table. ``StorageFirstStack``: REST API ``POST /requests`` -> DynamoDB PutItem
-> stream (NEW_IMAGE) -> event source mapping (INSERT only) -> stream handler. Both answer
``GET /requests/{id}`` from their table. The outputs (keys in ``stack.outputs.OUTPUT_KEYS``) are
all ``asyncbench deploy`` needs to write the endpoints file.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.constructs import IngestApi, ProcessorFunction, RequestsTable
from stack.constructs.nag import acknowledge
from stack.outputs import OUTPUT_KEYS, STAGE_NAMES
from stack.variants import HANDLERS

__all__ = ["FAILURE_QUEUE_RETENTION", "DirectStack", "StorageFirstStack"]

# SQS's maximum: parked batches stay until someone inspects them (the run collects them).
FAILURE_QUEUE_RETENTION = Duration.days(14)


def _output(stack: Stack, key: str, value: str, description: str) -> None:
    CfnOutput(stack, OUTPUT_KEYS[key], value=value, description=description)


class _VariantStack(Stack):
    """What both variants share: the table, the processor function, the API and the outputs."""

    variant: str
    handler: str
    table_actions: tuple[str, ...]

    # The direct stack owns the account-level API Gateway CloudWatch role (one owner).
    owns_account_role = False

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stage = STAGE_NAMES[self.variant]
        self.requests = RequestsTable(self, "Requests", stream=self.variant == "storage_first")
        self.table = self.requests.table
        self.processor = ProcessorFunction(
            self,
            "Processor",
            handler=self.handler,
            config=config,
            table_name=self.table.table_name,
            description=f"asyncbench {stage} processor",
        )
        self.function = self.processor.function
        # Exactly the calls the handler makes; grant_read_write_data would add Scan, Delete...
        self.table.grant(self.function, *self.table_actions)
        self.ingest = IngestApi(
            self,
            "Ingest",
            api_name=f"{config.name_prefix}-{stage}",
            stage_name=stage,
            table=self.table,
            log_retention_days=config.log_retention_days,
            description=f"asyncbench {stage} ingest API",
            owns_account_role=self.owns_account_role,
            allowed_cidrs=config.allowed_cidrs,
        )
        self.api = self.ingest.api
        # api.url ends with "/"; the endpoints file wants base URLs without it (stack.outputs).
        _output(self, "base_url", self.api.url, "Base URL of the variant (stage path included)")
        _output(self, "table", self.table.table_name, "Requests table")
        _output(self, "region", Aws.REGION, "Region the stack is deployed in")
        _output(self, "function_name", self.function.function_name, "Processor function")
        _output(
            self,
            "log_group",
            self.processor.log_group.log_group_name,
            "Processor log group (REPORT lines and the handlers' per-invocation line)",
        )
        _output(self, "api_id", self.api.rest_api_id, "REST API id")
        _output(self, "api_name", self.api.rest_api_name, "REST API name (CloudWatch ApiName)")
        _output(self, "stage", stage, "API stage name")
        if self.ingest.account_role is not None:
            _output(
                self,
                "account_role_arn",
                self.ingest.account_role.role_arn,
                "API Gateway's account-level CloudWatch role (kept by destroy)",
            )


class DirectStack(_VariantStack):
    """REST API -> Lambda proxy -> direct handler -> its own table."""

    variant = "direct"
    handler = HANDLERS["direct"]
    owns_account_role = True
    # PutItem stores the outcome; UpdateItem counts a duplicate invocation of the same request.
    table_actions = ("dynamodb:PutItem", "dynamodb:UpdateItem")

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        self.ingest.add_post_to_function(self.function)


class StorageFirstStack(_VariantStack):
    """REST API -> DynamoDB PutItem -> stream -> event source mapping -> stream handler."""

    variant = "storage_first"
    handler = HANDLERS["storage_first"]
    # BatchGetItem (GetItem as a fallback) reads the batch's items (consistent) before
    # processing; UpdateItem records the outcome.
    table_actions = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem")

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        self.ingest.add_post_to_table()
        self.failure_queue = sqs.Queue(
            self,
            "FailureDestination",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=FAILURE_QUEUE_RETENTION,
        )
        acknowledge(
            self.failure_queue,
            "AwsSolutions-SQS3",
            "This queue IS the dead-letter destination of the event source mapping (batch "
            "metadata of records that exhausted their retries); a DLQ of it would only hide them.",
        )
        self._grant_stream_read()
        self.stream_mapping = lambda_.EventSourceMapping(
            self,
            "StreamMapping",
            target=self.function,
            event_source_arn=self.table.table_stream_arn,
            # TRIM_HORIZON: requests stored before the mapping was enabled are processed too.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=config.batch_size,
            max_batching_window=Duration.seconds(config.batching_window_s),
            bisect_batch_on_error=config.bisect_on_error,
            # Finite, unlike AWS's defaults (-1): a poison record must not block its shard.
            retry_attempts=config.retry_attempts,
            max_record_age=Duration.seconds(config.max_record_age_s),
            parallelization_factor=config.parallelization_factor,
            report_batch_item_failures=True,
            filters=[lambda_.FilterCriteria.filter(STREAM_FILTER_PATTERN)],
            on_failure=event_sources.SqsDlq(self.failure_queue),
        )
        _output(
            self,
            "failure_queue_url",
            self.failure_queue.queue_url,
            "On-failure destination (SQS) of the stream mapping",
        )
        _output(self, "failure_queue_arn", self.failure_queue.queue_arn, "Its ARN")
        _output(
            self,
            "event_source_mapping_id",
            self.stream_mapping.event_source_mapping_id,
            "Stream event source mapping UUID",
        )

    def _grant_stream_read(self) -> None:
        # The mapping checks these four actions on the function's role. Three are scoped to the
        # table's stream; dynamodb:ListStreams has no resource-level permissions (the Service
        # Authorization Reference lists no resource type for it), so it can only be granted on
        # "*", and it only lists stream ARNs, never their data.
        self.processor.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                ],
                resources=[self.table.table_stream_arn],  # type: ignore[list-item]
            )
        )
        self.processor.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:ListStreams"], resources=["*"])
        )
        acknowledge(
            self.processor.role,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams only: it has no resource-level permissions, so AWS requires "
            'Resource "*"; it returns stream ARNs, not data. Every other action is scoped.',
        )
