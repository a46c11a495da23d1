"""The on-failure destination of the local event source mapping: a JSON-lines file.

On AWS, a stream event source mapping sends discarded batches to SQS/SNS as an invocation record
holding batch METADATA, never the records themselves (Lambda developer guide, "Using AWS Lambda
with Amazon DynamoDB" > error handling / on-failure destinations). The local stage writes the
same JSON object, one per line, so the run collector treats both targets alike.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["Condition", "FailureDestination", "failure_record"]

Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


def _iso_seconds(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_millis(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_record(
    *,
    records: Sequence[Mapping[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    condition: Condition,
    approximate_invoke_count: int,
    function_error: str | None,
    status_code: int | None,
    now_s: float,
) -> dict[str, Any]:
    """The invocation record AWS sends for a discarded DynamoDB stream batch.

    ``status_code`` None means no ``responseContext`` (AWS recorded it absent for a batch that
    exceeded its record age); otherwise ``functionError`` is always there, null when the
    function returned normally (a partial or malformed response), as AWS recorded.
    """
    first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
    result: dict[str, Any] = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": approximate_invoke_count,
        },
    }
    if status_code is not None:
        result["responseContext"] = {
            "statusCode": status_code,
            "executedVersion": "$LATEST",
            "functionError": function_error or None,
        }
    result["version"] = "1.0"
    result["timestamp"] = _iso_millis(now_s)
    result["DDBStreamBatchInfo"] = {
        "shardId": shard_id,
        "startSequenceNumber": first["SequenceNumber"],
        "endSequenceNumber": last["SequenceNumber"],
        "approximateArrivalOfFirstRecord": _iso_seconds(first["ApproximateCreationDateTime"]),
        "approximateArrivalOfLastRecord": _iso_seconds(last["ApproximateCreationDateTime"]),
        "batchSize": len(records),
        "streamArn": stream_arn,
    }
    return result


class FailureDestination:
    """Append-only, thread-safe JSON-lines file; each line is written whole and flushed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def send(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every record written so far (for tests and the CLI)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
