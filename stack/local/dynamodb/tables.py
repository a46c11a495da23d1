"""Both variants' tables in DynamoDB Local, defined as the CDK app defines them.

Key ``id`` (string), on-demand billing, TTL on ``ttl``; the storage-first table has a stream of
NEW_IMAGE records (what its event source mapping reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3

from stack.config import StackConfig
from stack.endpoints import VARIANTS
from stack.local.dynamodb.dynamodb_local import client_kwargs

__all__ = ["LocalTable", "create_tables", "table_definition"]


@dataclass(frozen=True)
class LocalTable:
    variant: str
    name: str
    stream_arn: str | None
    """storage_first only: the latest stream's ARN."""


def table_definition(name: str, with_stream: bool) -> dict[str, Any]:
    """CreateTable arguments of a requests table as the CDK app defines it (key `id`, on-demand,
    a NEW_IMAGE stream when asked)."""
    definition: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if with_stream:
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_IMAGE",
        }
    return definition


def create_tables(endpoint_url: str, config: StackConfig) -> dict[str, LocalTable]:
    """Create (or reuse, when they already exist) both variants' tables; keyed by variant."""
    client = boto3.client("dynamodb", **client_kwargs(endpoint_url))
    existing = set(client.list_tables()["TableNames"])
    tables: dict[str, LocalTable] = {}
    for variant in VARIANTS:
        name = config.table_name(variant)
        with_stream = variant == "storage_first"
        if name not in existing:
            client.create_table(**table_definition(name, with_stream))
            client.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
            )
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
            )
        description = client.describe_table(TableName=name)["Table"]
        tables[variant] = LocalTable(
            variant=variant,
            name=name,
            stream_arn=description.get("LatestStreamArn") if with_stream else None,
        )
    return tables
