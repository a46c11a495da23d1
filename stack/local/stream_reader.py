"""A small DynamoDB Streams client for DynamoDB Local, speaking the JSON protocol over HTTP.

Why not boto3: its parser turns binary attributes into bytes and timestamps into datetimes, and
the event source mapping must hand records to the function exactly as they came off the wire
(DynamoDB JSON, as Lambda delivers them). Raw JSON is also several times cheaper to parse, which
matters on a 2-core machine that also runs the load generator.

DynamoDB Local keeps one database per access key and region, so the client must sign with the
same credentials as whoever created the table (the signature itself is not checked).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from asyncbench.errors import LocalStageError

__all__ = [
    "ExpiredIteratorError",
    "Shard",
    "StreamNotFoundError",
    "StreamReadError",
    "StreamsClient",
    "TrimmedDataError",
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
    """Thread-safe: each thread keeps its own keep-alive HTTP connection."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme != "http" or not parts.hostname:
            raise LocalStageError(
                f"DynamoDB endpoint {endpoint_url!r} must look like http://HOST:PORT"
            )
        self._url = f"http://{parts.hostname}:{parts.port or 80}/"
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout_s = timeout_s
        self._signer = SigV4Auth(Credentials(access_key_id, secret_access_key), "dynamodb", region)
        self._local = threading.local()
        self._all_lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

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
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            with self._all_lock:
                if connection in self._all:
                    self._all.remove(connection)
            connection.close()

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._all_lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()

    # ------------------------------------------------------------------------- private
    def _call(self, operation: str, body: Mapping[str, Any]) -> dict[str, Any]:
        payload = json.dumps(body).encode()
        request = AWSRequest(
            method="POST",
            url=self._url,
            data=payload,
            headers={
                "X-Amz-Target": f"DynamoDBStreams_20120810.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        self._signer.add_auth(request)
        headers = dict(request.headers.items())
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request("POST", "/", body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                # A kept-alive connection the server closed: reconnect once, then give up.
                self.close_thread_connection()
                if attempt:
                    raise
        answer: dict[str, Any] = json.loads(data) if data else {}
        if response.status != 200:
            kind = str(answer.get("__type", "")).rpartition("#")[2]
            message = (
                answer.get("Message") or answer.get("message") or data.decode(errors="replace")
            )
            raise _ERRORS.get(kind, StreamReadError)(f"{operation} failed: {kind}: {message}")
        return answer

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
            self._local.connection = connection
            with self._all_lock:
                self._all.append(connection)
        return connection


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
    record["eventSourceARN"] = stream_arn
    if record.get("eventName") not in ("INSERT", "MODIFY", "REMOVE"):
        record["eventName"] = "REMOVE"
        identity = record.get("userIdentity")
        if identity is None:
            # DynamoDB Local drops userIdentity too; AWS marks TTL deletions this way.
            record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record
