"""The requests table both variants store their items in (CONTRACT.md, "Stored item")."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

__all__ = ["TTL_ATTRIBUTE", "RequestsTable"]

TTL_ATTRIBUTE = "ttl"


class RequestsTable(Construct):
    """On-demand table keyed by ``id`` (the API request id) with TTL on ``ttl``.

    ``stream=True`` adds a NEW_IMAGE stream (storage-first): the processor needs the stored
    request, never the old image.
    """

    def __init__(self, scope: Construct, construct_id: str, *, stream: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TTL_ATTRIBUTE,
            stream=dynamodb.StreamViewType.NEW_IMAGE if stream else None,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # A benchmark stack: `asyncbench destroy` must leave nothing billable behind.
            removal_policy=RemovalPolicy.DESTROY,
        )
