"""Reading a variant's table and stream: the same DynamoDB API locally and on AWS.

The items of a run are found with a paginated Scan filtered on ``run_id`` (the table's key is
the request id, so there is no cheaper access path). A failure-destination record names a range
of stream sequence numbers, not items: :func:`resolve_sequence_range` reads the stream from the
first one (``AT_SEQUENCE_NUMBER``) to turn it back into request ids while the stream still holds
the records (24 h on AWS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "iter_run_items",
    "plain",
    "resolve_parked_record",
    "resolve_sequence_range",
    "scan_run_items",
]

_DESERIALIZER = TypeDeserializer()
# GetRecords returns at most 1000 records per call; a destination batch is far smaller
# (BatchSize <= 10000 is possible, so the loop below still pages).
_MAX_EMPTY_PAGES = 3


def plain(value: Any) -> Any:
    """DynamoDB's Decimals (and sets) as plain Python numbers, lists and dicts."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain(inner) for key, inner in value.items()}
    if isinstance(value, list | set | tuple):
        return [plain(inner) for inner in value]
    return value


def iter_run_items(
    dynamodb: Any,
    table: str,
    run_id: str,
    *,
    page_size: int | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` stored with ``run_id``, as plain dicts, page by page as the Scan
    returns them (at most ``page_size`` items read per call; DynamoDB's own page is 1 MB).
    ``on_page(pages, items)`` is called after each page with the totals so far."""
    arguments: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "run_id = :run",
        "ExpressionAttributeValues": {":run": {"S": run_id}},
        "ConsistentRead": True,  # a status written just before the scan must be seen
    }
    if page_size:
        arguments["Limit"] = page_size
    pages = items = 0
    while True:
        page = dynamodb.scan(**arguments)
        pages += 1
        for raw in page.get("Items", []):
            items += 1
            yield {key: plain(_DESERIALIZER.deserialize(value)) for key, value in raw.items()}
        if on_page is not None:
            on_page(pages, items)
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            return
        arguments["ExclusiveStartKey"] = last_key


def scan_run_items(dynamodb: Any, table: str, run_id: str) -> list[dict[str, Any]]:
    """Every item of ``table`` stored with ``run_id``, as plain dicts (all pages)."""
    return list(iter_run_items(dynamodb, table, run_id))


def resolve_sequence_range(
    streams: Any, stream_arn: str, shard_id: str, start: str, end: str | None
) -> list[str]:
    """Request ids of the stream records from ``start`` to ``end`` (inclusive) on one shard.

    Returns an empty list when the range can no longer be read (trimmed, unknown shard): the
    caller then keeps the destination record without request ids rather than dropping it.
    """
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=start,
        ).get("ShardIterator")
    except (BotoCoreError, ClientError):  # trimmed or unknown: "not resolvable", not a failure
        return []
    last = int(end) if end and end.isdigit() else None
    request_ids: list[str] = []
    empty_pages = 0
    while iterator and empty_pages < _MAX_EMPTY_PAGES:
        try:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
        except (BotoCoreError, ClientError):
            break
        records = page.get("Records", [])
        empty_pages = 0 if records else empty_pages + 1
        for record in records:
            sequence = record.get("dynamodb", {}).get("SequenceNumber", "")
            if last is not None and sequence.isdigit() and int(sequence) > last:
                return request_ids
            key = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S")
            # The range also spans the processor's own MODIFY records; only INSERTs were sent.
            if key is not None and record.get("eventName") == "INSERT" and key not in request_ids:
                request_ids.append(key)
            if last is None or (sequence.isdigit() and int(sequence) >= last):
                return request_ids
        iterator = page.get("NextShardIterator")
    return request_ids


def resolve_parked_record(streams: Any, record: Mapping[str, Any]) -> list[str]:
    """Request ids of a failure-destination record's batch (empty when it names no range)."""
    info = record.get("DDBStreamBatchInfo") or {}
    if not (info.get("streamArn") and info.get("shardId") and info.get("startSequenceNumber")):
        return []
    return resolve_sequence_range(
        streams,
        info["streamArn"],
        info["shardId"],
        info["startSequenceNumber"],
        info.get("endSequenceNumber"),
    )
