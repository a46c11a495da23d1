"""The storage-first handler: a DynamoDB stream batch -> logic -> item updates.

Returns ``{"batchItemFailures": [{"itemIdentifier": SEQUENCE_NUMBER}, ...]}`` (the mapping has
ReportBatchItemFailures on). Per record, in order:

- not an INSERT (MODIFY from our own updates, REMOVE, TTL deletions, event names a newer SDK
  would not know) or malformed: skipped;
- the batch's items are read first (BatchGetItem, consistent); item vanished: skipped and
  logged; item already SUCCEEDED/FAILED (a redelivery): not processed again, ``duplicates``
  incremented on the item;
- success: PENDING -> SUCCEEDED with processed time, attempts and ``ttl = now + TTL_SECONDS``;
- permanent failure: PENDING -> FAILED with the error (and a TTL if FAILURE_TTL_SECONDS > 0);
- transient failure: ``attempts`` incremented and ``error`` recorded, a back-off inside the
  invocation, then this record and every later one are reported as failures (the mapping
  replays from the lowest; stopping here keeps per-item order). Past the ceiling (attempts or
  record age, see :mod:`processor.retry`) the item is FAILED with the last error instead;
- with less than ``EARLY_STOP_MS`` of the invocation left (after the first record), the rest of
  the batch is handed back unprocessed in ``batchItemFailures`` instead of timing out.

With ``BATCH_CONCURRENCY`` > 1 up to that many records run at once (threads: the work is
mostly waiting). They start in sequence order; the first one to need a retry stops new starts,
and the lowest failed sequence number and everything after it are reported, as above. A later
record that already succeeded is redelivered then, found terminal and counted as a duplicate.

``started_at_ms`` is when processing of the request first started (kept across retries);
``processed_at_ms`` is when the item became terminal; ``attempts`` counts the attempts that ran
the logic; ``cold_start`` is that of the invocation that made the item terminal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from processor import items
from processor.logic import PermanentFailure, TransientFailure, process
from processor.retry import backoff_ms, give_up_reason
from processor.runtime import Runtime

__all__ = ["EARLY_STOP_MS", "handle", "handler", "is_new_request"]

TTL_PRINCIPAL = "dynamodb.amazonaws.com"

BATCH_GET_LIMIT = 100
"""Most keys one BatchGetItem call may ask for."""

EARLY_STOP_MS = 2000
"""Below this much remaining time, later records of a batch are handed back unprocessed."""

Outcome = Literal["done", "retry"]

# Attribute names that are DynamoDB reserved words go through placeholders.
_NAMES = {"#status": "status", "#error": "error", "#ttl": "ttl"}


def is_new_request(record: Mapping[str, Any]) -> bool:
    """True for an INSERT record made by a client write (not a TTL deletion or an update)."""
    if record.get("eventName") != "INSERT":
        return False
    identity = record.get("userIdentity") or {}
    return identity.get("principalId") != TTL_PRINCIPAL


def _created_ms(record: Mapping[str, Any], item: Mapping[str, Any]) -> float | None:
    """When the request entered the stream, the earlier of the record's and the item's clock.

    ApproximateCreationDateTime is rounded down to the second (epoch seconds in a Lambda event,
    a datetime when a boto3 reader passes it on): either way the age errs on the old side.
    """
    candidates: list[float] = []
    created = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        candidates.append(created.timestamp() * 1000)
    elif isinstance(created, int | float):
        candidates.append(float(created) * 1000)
    accepted_at_ms = items.read_int(item, "accepted_at_ms", 0)
    if accepted_at_ms > 0:
        candidates.append(float(accepted_at_ms))
    return min(candidates) if candidates else None


def _request_id(record: Mapping[str, Any]) -> str | None:
    return items.read_str((record.get("dynamodb") or {}).get("Keys") or {}, "id")


def _remaining_ms(context: Any) -> int | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if callable(remaining) else None


class _RecordHandler:
    """Handles the records of one invocation (shares its runtime, context and cold start)."""

    def __init__(self, runtime: Runtime, context: Any, cold_start: bool) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.client = runtime.dynamodb
        self.context = context
        self.cold_start = cold_start
        self._prefetched: dict[str, Mapping[str, Any] | None] = {}

    def prefetch(self, records: list[Mapping[str, Any]]) -> None:
        """Read the batch's items in BatchGetItem calls of 100 instead of one GetItem each.

        Halves the DynamoDB calls per record, which is what bounds a shard's drain rate. The
        read stays consistent and still comes before processing, so a redelivered record is
        recognised before its logic runs. Keys the batch read leaves unprocessed (throttling)
        are read one by one later; an item absent from the answer does not exist.
        """
        ids = list(
            dict.fromkeys(
                request_id
                for record in records
                if is_new_request(record) and (request_id := _request_id(record)) is not None
            )
        )
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            chunk = ids[start : start + BATCH_GET_LIMIT]
            answer = self.client.batch_get_item(
                RequestItems={
                    self.settings.table_name: {
                        "Keys": [{"id": items.string(request_id)} for request_id in chunk],
                        "ConsistentRead": True,
                    }
                }
            )
            unprocessed = {
                items.read_str(key, "id")
                for key in (answer.get("UnprocessedKeys") or {})
                .get(self.settings.table_name, {})
                .get("Keys", [])
            }
            found = {
                items.read_str(item, "id"): item
                for item in answer.get("Responses", {}).get(self.settings.table_name, [])
            }
            for request_id in chunk:
                if request_id not in unprocessed:
                    self._prefetched[request_id] = found.get(request_id)

    def _read_item(self, request_id: str) -> Mapping[str, Any] | None:
        if request_id in self._prefetched:
            return self._prefetched.pop(request_id)
        item: Mapping[str, Any] | None = self.client.get_item(
            TableName=self.settings.table_name,
            Key={"id": items.string(request_id)},
            ConsistentRead=True,
        ).get("Item")
        return item

    def log(self, fields: Mapping[str, Any]) -> None:
        self.runtime.log({"handler": "stream", "coldStart": self.cold_start, **fields})

    def handle(self, record: Mapping[str, Any]) -> Outcome:
        sequence_number = record["dynamodb"]["SequenceNumber"]
        base = {"sequenceNumber": sequence_number, "eventName": record.get("eventName")}
        request_id = _request_id(record)
        if not is_new_request(record) or request_id is None:
            self.log({**base, "outcome": "skipped"})
            return "done"
        base["requestId"] = request_id
        item = self._read_item(request_id)
        if item is None:
            self.log({**base, "outcome": "vanished"})
            return "done"
        if items.read_str(item, "status") in items.TERMINAL:
            self._count_duplicate(request_id, base)
            return "done"

        attempts = items.read_int(item, "attempts") + 1
        started_at_ms = self.runtime.now_ms()
        try:
            process(
                items.read_str(item, "request"),
                now_ms=self.runtime.now_ms,
                sleep=self.runtime.sleep,
            )
        except PermanentFailure as failure:
            self._finish(request_id, items.FAILED, started_at_ms, str(failure), attempts, base)
            return "done"
        except TransientFailure as failure:
            return self._transient(record, item, attempts, started_at_ms, failure, base)
        self._finish(request_id, items.SUCCEEDED, started_at_ms, None, attempts, base)
        return "done"

    def _transient(
        self,
        record: Mapping[str, Any],
        item: Mapping[str, Any],
        attempts: int,
        started_at_ms: int,
        failure: TransientFailure,
        base: Mapping[str, Any],
    ) -> Outcome:
        """Retry later (after a back-off), or give up past the ceiling."""
        settings = self.settings
        request_id = base["requestId"]
        delay_ms = backoff_ms(
            attempts,
            base_ms=settings.retry_backoff_base_ms,
            max_ms=settings.retry_backoff_max_ms,
            remaining_ms=_remaining_ms(self.context),
        )
        created_ms = _created_ms(record, item)
        age_ms = 0.0 if created_ms is None else self.runtime.now_ms() - created_ms
        reason = give_up_reason(
            attempts,
            max_attempts=settings.max_attempts,
            age_ms=age_ms,
            max_record_age_s=settings.max_record_age_s,
            next_backoff_ms=delay_ms,
        )
        if reason is not None:
            error = f"{failure} ({reason})"
            self._finish(request_id, items.FAILED, started_at_ms, error, attempts, base)
            return "done"
        updated = self._update(
            request_id,
            "SET #error = :error, started_at_ms = if_not_exists(started_at_ms, :started) "
            "ADD attempts :one",
            {":error": items.string(str(failure)), ":started": items.number(started_at_ms)},
        )
        if updated is None:
            self._count_duplicate(request_id, base)
            return "done"
        self.log(
            {
                **base,
                "outcome": "retry",
                "attempts": attempts,
                "backoffMs": delay_ms,
                "error": str(failure),
            }
        )
        self.runtime.sleep(delay_ms / 1000)
        return "retry"

    def _finish(
        self,
        request_id: str,
        status: str,
        started_at_ms: int,
        error: str | None,
        attempts: int,
        base: Mapping[str, Any],
    ) -> None:
        """Make a PENDING item terminal (SUCCEEDED or FAILED)."""
        processed_at_ms = self.runtime.now_ms()
        ttl_seconds = (
            self.settings.ttl_seconds
            if status == items.SUCCEEDED
            else self.settings.failure_ttl_seconds
        )
        values = {
            ":status": items.string(status),
            ":started": items.number(started_at_ms),
            ":processed": items.number(processed_at_ms),
            ":cold": items.boolean(self.cold_start),
        }
        sets = [
            "#status = :status",
            "started_at_ms = if_not_exists(started_at_ms, :started)",
            "processed_at_ms = :processed",
            "cold_start = :cold",
        ]
        if ttl_seconds > 0:
            sets.append("#ttl = :ttl")
            values[":ttl"] = items.number(processed_at_ms // 1000 + ttl_seconds)
        if error is not None:
            sets.append("#error = :error")
            values[":error"] = items.string(error)
        expression = "SET " + ", ".join(sets) + " ADD attempts :one"
        if error is None:
            expression += " REMOVE #error"  # a success after retries keeps no stale error
        updated = self._update(request_id, expression, values)
        if updated is None:
            self._count_duplicate(request_id, base)
            return
        accepted = items.read_int(updated, "accepted_at_ms", 0) or None
        self.log(
            {
                **base,
                "outcome": status.lower(),
                "attempts": attempts,
                "error": error,
                "lagMs": None if accepted is None else processed_at_ms - accepted,
            }
        )

    def _update(
        self, request_id: str, expression: str, values: dict[str, Any]
    ) -> Mapping[str, Any] | None:
        """A conditional update of a PENDING item: the new item, or None if not PENDING."""
        condition = "#status = :pending"
        names = {key: name for key, name in _NAMES.items() if key in expression + condition}
        try:
            attributes: Mapping[str, Any] = self.client.update_item(
                TableName=self.settings.table_name,
                Key={"id": items.string(request_id)},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    **values,
                    ":pending": items.string(items.PENDING),
                    ":one": items.number(1),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return attributes

    def _count_duplicate(self, request_id: str, base: Mapping[str, Any]) -> None:
        """A delivery of an item that is already terminal: count it, don't process it."""
        try:
            self.client.update_item(
                TableName=self.settings.table_name,
                Key={"id": items.string(request_id)},
                UpdateExpression="ADD duplicates :one",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeValues={":one": items.number(1)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            self.log({**base, "outcome": "vanished"})
            return
        self.log({**base, "outcome": "duplicate"})


def _failures_from(records: list[Mapping[str, Any]], index: int) -> dict[str, Any]:
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["dynamodb"]["SequenceNumber"]} for record in records[index:]
        ]
    }


def handle(event: Mapping[str, Any], context: Any, runtime: Runtime) -> dict[str, Any]:
    """Handle one stream batch; one structured line per invocation, whatever happens."""
    records = list(event.get("Records") or [])
    run_ids = [run_id for run_id in map(_run_id, records) if run_id]
    with runtime.invocation_line("stream", context, batch_size=len(records), run_ids=run_ids):
        return _handle(records, context, runtime)


def _run_id(record: Mapping[str, Any]) -> str | None:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    value = (image.get("run_id") or {}).get("S")
    return str(value) if value else None


def _handle(records: list[Mapping[str, Any]], context: Any, runtime: Runtime) -> dict[str, Any]:
    record_handler = _RecordHandler(runtime, context, runtime.begin_invocation())
    try:
        record_handler.prefetch(records)
    except (ClientError, BotoCoreError) as error:
        # Not fatal: each record is then read on its own (and fails there if DynamoDB is down).
        record_handler.log({"outcome": "prefetch_failed", "error": str(error)})
    concurrency = runtime.settings.batch_concurrency
    if concurrency <= 1 or len(records) <= 1:
        stop = _handle_in_order(records, context, record_handler)
    else:
        stop = _handle_concurrently(records, context, record_handler, concurrency)
    return {"batchItemFailures": []} if stop is None else _failures_from(records, stop)


def _deferred(
    records: list[Mapping[str, Any]], index: int, context: Any, handler: _RecordHandler
) -> bool:
    """True when the invocation is nearly out of time: records from ``index`` on go back.

    Handing them back beats timing out, which would fail the whole batch (and replay the
    records already done). Never on the first record, so every invocation makes progress.
    """
    remaining_ms = _remaining_ms(context)
    if index == 0 or remaining_ms is None or remaining_ms >= EARLY_STOP_MS:
        return False
    handler.log(
        {
            "sequenceNumber": records[index]["dynamodb"]["SequenceNumber"],
            "outcome": "deferred",
            "remainingMs": remaining_ms,
            "deferredRecords": len(records) - index,
        }
    )
    return True


def _handle_one(record: Mapping[str, Any], handler: _RecordHandler) -> Outcome:
    try:
        return handler.handle(record)
    except (ClientError, BotoCoreError) as error:
        # DynamoDB failed (throttled, unreachable): retry from here, keep what is done.
        handler.log(
            {
                "sequenceNumber": record["dynamodb"]["SequenceNumber"],
                "outcome": "dynamodb_error",
                "error": str(error),
            }
        )
        return "retry"


def _handle_in_order(
    records: list[Mapping[str, Any]], context: Any, handler: _RecordHandler
) -> int | None:
    """One record after another; the index the mapping must replay from, or None."""
    for index, record in enumerate(records):
        if _deferred(records, index, context, handler) or _handle_one(record, handler) == "retry":
            return index
    return None


def _handle_concurrently(
    records: list[Mapping[str, Any]], context: Any, handler: _RecordHandler, concurrency: int
) -> int | None:
    """Up to ``concurrency`` records at once (each request is its own item, so no order
    between records needs keeping); the index the mapping must replay from, or None.

    Records start in sequence order. Once one must be retried (or time runs short) no later
    record starts, the ones in flight finish, and the LOWEST index that failed is reported:
    the mapping checkpoints there, so everything before it must be done, and records after it
    that did succeed are redelivered and recognised as terminal (counted as duplicates, not
    processed again).
    """
    stop: int | None = None
    in_flight: dict[Future[Outcome], int] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="record") as pool:
        next_index = 0
        while next_index < len(records) or in_flight:
            while stop is None and next_index < len(records) and len(in_flight) < concurrency:
                if _deferred(records, next_index, context, handler):
                    stop = next_index
                    break
                future = pool.submit(_handle_one, records[next_index], handler)
                in_flight[future] = next_index
                next_index += 1
            if stop is not None:
                next_index = len(records)
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                index = in_flight.pop(future)
                if future.result() == "retry":
                    stop = index if stop is None else min(stop, index)
    return stop


# Built at import when the environment is configured, so on AWS the init phase pays for the
# client; otherwise (imported by a test or a tool) on the first invocation.
_runtime: Runtime | None = Runtime.from_environment() if os.environ.get("TABLE_NAME") else None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: ``processor.stream.handler``."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.from_environment()
    return handle(event, context, _runtime)
