"""What one invocation of a stream batch means for the event source mapping.

Rules from the Lambda developer guide, "Configuring partial batch response with DynamoDB and
Lambda" (services-ddb-batchfailurereporting): with ReportBatchItemFailures, a null or empty
response, or a null or empty ``batchItemFailures`` list, is complete success; an
``itemIdentifier`` that is empty, null, or under a wrong key name fails the whole batch (so does
an identifier naming no record of the batch, or a response of the wrong shape); otherwise the
checkpoint moves to the LOWEST failed sequence number and the records from there are retried.

Function errors, timeouts and throttles all fail the batch, but a throttle never reached the
function: it is retried without counting against MaximumRetryAttempts ("This doesn't apply to
service errors or throttles where the batch didn't reach the function", error handling for
stream event source mappings) and without bisecting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BatchOutcome", "interpret"]

Kind = Literal["success", "partial", "failure", "throttled"]


@dataclass(frozen=True)
class BatchOutcome:
    """``failed_from`` is the index of the first record to retry (partial); ``reason`` says why."""

    kind: Kind
    failed_from: int = 0
    reason: str = ""
    function_error: str | None = None
    """responseContext.functionError for the failure destination ("Unhandled")."""


def interpret(
    status: str,
    payload: Any,
    error_type: str | None,
    records: Sequence[Mapping[str, Any]],
    *,
    report_batch_item_failures: bool,
) -> BatchOutcome:
    """Classify an invocation result (the fields of ``LocalFunction.invoke``'s Invocation)."""
    if status == "throttled":
        return BatchOutcome("throttled", reason="TooManyRequestsException")
    if status == "timeout":
        return BatchOutcome(
            "failure", reason=error_type or "Sandbox.Timedout", function_error="Unhandled"
        )
    if status != "ok":
        return BatchOutcome("failure", reason=error_type or "error", function_error="Unhandled")
    if not report_batch_item_failures:
        return BatchOutcome("success")
    return _partial_response(payload, records)


def _partial_response(payload: Any, records: Sequence[Mapping[str, Any]]) -> BatchOutcome:
    # An empty response is complete success; AWS recorded `[]` as one too.
    if payload is None or payload == {} or payload == "" or payload == []:
        return BatchOutcome("success")
    if not isinstance(payload, Mapping):
        return BatchOutcome("failure", reason="malformed response: not an object")
    failures = payload.get("batchItemFailures")
    if failures is None or failures == []:
        return BatchOutcome("success")
    if not isinstance(failures, list):
        return BatchOutcome("failure", reason="malformed response: batchItemFailures not a list")
    index_of = {record["dynamodb"]["SequenceNumber"]: i for i, record in enumerate(records)}
    lowest: int | None = None
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or not identifier:
            return BatchOutcome("failure", reason="empty or missing itemIdentifier")
        if identifier not in index_of:
            return BatchOutcome("failure", reason=f"unknown itemIdentifier {identifier!r}")
        index = index_of[identifier]
        lowest = index if lowest is None else min(lowest, index)
    return BatchOutcome("partial", failed_from=lowest or 0, reason="batchItemFailures")
