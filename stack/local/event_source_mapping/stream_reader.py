"""The mapping's reader of DynamoDB Streams (on DynamoDB Local's JSON protocol) and the record
shape Lambda delivers.

Why not boto3: its parser turns binary attributes into bytes and timestamps into datetimes, and
the event source mapping must hand records to the function exactly as they came off the wire
(DynamoDB JSON, as Lambda delivers them). Raw JSON is also several times cheaper to parse, which
matters on a 2-core machine that also runs the load generator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asyncbench.errors import LocalStageError
from stack.local.dynamodb.dynamodb_local import LOCAL_REGION
from stack.local.dynamodb.http_client import STREAMS_TARGET, DynamoDbHttp, DynamoDbUnavailableError

__all__ = [
    "ExpiredIteratorError",
    "Shard",
    "StreamNotFoundError",
    "StreamReadError",
    "StreamsClient",
    "TrimmedDataError",
    "stage_arn",
    "to_lambda_record",
]


class StreamReadError(LocalStageError):
    """Raised when DynamoDB Local answers a streams call with an error."""


class StreamNotFoundError(StreamReadError):
    """Raised when the stream ARN is unknown (wrong credentials/region, or table deleted)."""


class ExpiredIteratorError(StreamReadError):
    """Raised when a shard iterator is older than 15 minutes: get a new one."""


class TrimmedDataError(StreamReadError):
    """Raised when the records asked for are past the stream's retention."""


_ERRORS: dict[str, type[StreamReadError]] = {
    "ResourceNotFoundException": StreamNotFoundError,
    "ExpiredIteratorException": ExpiredIteratorError,
    "TrimmedDataAccessException": TrimmedDataError,
}


@dataclass(frozen=True)
class Shard:
    """One shard of a stream as DescribeStream lists it."""

    shard_id: str
    parent_shard_id: str | None
    starting_sequence_number: str
    ending_sequence_number: str | None
    """Set once the shard is closed (no more records will be added)."""


class StreamsClient:
    """The Streams operations the mapping needs; thread-safe (one connection per thread)."""

    def __init__(
        self, endpoint_url: str, *, region: str, access_key_id: str, timeout_s: float = 10.0
    ) -> None:
        self._http = DynamoDbHttp(
            endpoint_url, region=region, access_key_id=access_key_id, timeout_s=timeout_s
        )

    # ------------------------------------------------------------------------ API calls
    def describe_shards(self, stream_arn: str) -> list[Shard]:
        """All shards of the stream (DescribeStream, following LastEvaluatedShardId)."""
        shards: list[Shard] = []
        start: str | None = None
        while True:
            body: dict[str, Any] = {"StreamArn": stream_arn}
            if start:
                body["ExclusiveStartShardId"] = start
            description = self._call("DescribeStream", body)["StreamDescription"]
            for raw in description.get("Shards", []):
                numbers = raw.get("SequenceNumberRange", {})
                shards.append(
                    Shard(
                        shard_id=raw["ShardId"],
                        parent_shard_id=raw.get("ParentShardId"),
                        starting_sequence_number=numbers.get("StartingSequenceNumber", ""),
                        ending_sequence_number=numbers.get("EndingSequenceNumber"),
                    )
                )
            start = description.get("LastEvaluatedShardId")
            if not start:
                return shards

    def shard_iterator(
        self,
        stream_arn: str,
        shard_id: str,
        iterator_type: str,
        sequence_number: str | None = None,
    ) -> str:
        """GetShardIterator: TRIM_HORIZON, LATEST, AT_/AFTER_SEQUENCE_NUMBER."""
        body = {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            body["SequenceNumber"] = sequence_number
        return str(self._call("GetShardIterator", body)["ShardIterator"])

    def get_records(
        self, iterator: str, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], str | None]:
        """GetRecords: the raw records and the next iterator (None once a closed shard ends)."""
        answer = self._call("GetRecords", {"ShardIterator": iterator, "Limit": limit})
        return list(answer.get("Records", [])), answer.get("NextShardIterator")

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (a thread calls this before it ends)."""
        self._http.close_thread_connection()

    def close(self) -> None:
        """Close every connection of every thread."""
        self._http.close()

    # ------------------------------------------------------------------------- private
    def _call(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            status, data = self._http.call(
                operation, json.dumps(body).encode(), target=STREAMS_TARGET
            )
        except DynamoDbUnavailableError as error:
            raise StreamReadError(f"{operation} failed: {error}") from error
        answer: dict[str, Any] = json.loads(data) if data else {}
        if status != 200:
            kind = str(answer.get("__type", "")).rpartition("#")[2]
            message = (
                answer.get("Message") or answer.get("message") or data.decode(errors="replace")
            )
            raise _ERRORS.get(kind, StreamReadError)(f"{operation} failed: {kind}: {message}")
        return answer


def stage_arn(arn: str) -> str:
    """An ARN of DynamoDB Local (region "ddblocal") in the stage's region, as AWS would name it."""
    return arn.replace(":ddblocal:", f":{LOCAL_REGION}:", 1)


def to_lambda_record(raw: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record in the shape Lambda delivers it (attribute values stay DynamoDB JSON).

    Lambda adds ``eventSourceARN`` and keeps ``userIdentity`` when present (TTL deletions). The
    Java SDK inside DynamoDB Local does not know the TTL-deletion event and names it
    "UNKNOWN_TO_SDK_VERSION"; a record without a new image that has ``userIdentity`` or no
    other known name is a REMOVE, which is what AWS sends.
    """
    record = dict(raw)
    record["eventVersion"] = "1.1"
    record["eventSource"] = "aws:dynamodb"
    record["eventSourceARN"] = stage_arn(stream_arn)
    # DynamoDB Local says "ddblocal" and gives UUIDs; AWS gives the region and 32 hex digits.
    record["awsRegion"] = LOCAL_REGION
    if isinstance(record.get("eventID"), str):
        record["eventID"] = record["eventID"].replace("-", "")
    if record.get("eventName") not in ("INSERT", "MODIFY", "REMOVE"):
        record["eventName"] = "REMOVE"
        identity = record.get("userIdentity")
        if identity is None:
            # DynamoDB Local drops userIdentity too; AWS marks TTL deletions this way.
            record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record
