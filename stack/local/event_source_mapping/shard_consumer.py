"""One shard of a DynamoDB stream, consumed the way a Lambda event source mapping does.

A reader thread polls the shard (GetRecords; again at once while records keep coming, else after
the poll interval: Lambda polls stream shards 4 times a second), drops records the filter
criteria reject (they are checkpointed past, never delivered), and deals the rest into
``ParallelizationFactor`` lanes by partition key, so records of one item always travel in order
through the same lane ("Concurrent reads of DynamoDB Streams shards": "records with the same
partition key ... processed in order"). Each lane has one worker that batches, invokes, retries,
bisects and discards (see :mod:`.batch_outcome` for what a result means).

Batching ("Lambda event source mappings" > batching behavior): a batch goes out when it holds
BatchSize records, when it nears the 6 MB invoke payload limit, or when the batching window has
passed; for streams "the next window begins as soon as the previous function invocation
completes". Retries of a failed batch wait for the next poll; AWS documents no other back-off
for stream sources.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stack.local.event_source_mapping.batch_outcome import BatchOutcome, interpret
from stack.local.event_source_mapping.event_filter import matches_any
from stack.local.event_source_mapping.failure_destination import (
    Condition,
    FailureDestination,
    failure_record,
)
from stack.local.event_source_mapping.settings import INVOKE_PAYLOAD_LIMIT_BYTES, MappingSettings
from stack.local.event_source_mapping.stream_reader import (
    ExpiredIteratorError,
    Shard,
    StreamReadError,
    StreamsClient,
    TrimmedDataError,
    to_lambda_record,
)

__all__ = ["InvocationResult", "InvokableFunction", "MetricsSink", "ShardConsumer"]

_log = logging.getLogger(__name__)

# DynamoDB Local truncates ApproximateCreationDateTime to the minute (AWS: to the second), so a
# record's arrival is estimated as the earlier of "when we first read it" and the end of that
# minute, unless the item carries its own millisecond timestamp.
_CREATION_TIME_RESOLUTION_S = 60.0
# Leave room for the {"Records": [...]} envelope under the 6 MB payload limit.
_PAYLOAD_BUDGET_BYTES = INVOKE_PAYLOAD_LIMIT_BYTES - 1024
_RECORDS_PER_READ = 1000


class InvocationResult(Protocol):
    """The fields of ``stack.local.awslambda.runtime.Invocation`` the mapping reads."""

    status: str
    payload: Any
    error_type: str | None


class InvokableFunction(Protocol):
    """What the mapping needs of a function: ``LocalFunction`` or a test stand-in."""

    name: str
    variant: str

    def invoke(self, event: Mapping[str, Any]) -> InvocationResult: ...


class MetricsSink(Protocol):
    def emit(
        self,
        variant: str,
        function: str,
        metric: str,
        value: float,
        unit: str = "Count",
        **extra: Any,
    ) -> None: ...


@dataclass
class _Pending:
    record: dict[str, Any]
    size: int
    arrival_s: float
    """Estimated time the record entered the stream (epoch seconds)."""
    time_ms: float
    """The record's own time for IteratorAge (ms)."""


@dataclass
class _Work:
    records: list[_Pending]
    attempts: int = 0
    """Failed invocations that count against MaximumRetryAttempts."""
    invokes: int = 0
    last_status_code: int | None = None
    last_function_error: str | None = None


class ShardConsumer:
    """Reader + lane workers of one shard; ``finished`` is set once the shard is fully done."""

    def __init__(
        self,
        *,
        client: StreamsClient,
        stream_arn: str,
        shard: Shard,
        iterator_type: str,
        function: InvokableFunction,
        function_arn: str,
        settings: MappingSettings,
        filter_patterns: Sequence[Mapping[str, Any]],
        destination: FailureDestination,
        metrics: MetricsSink | None,
        poll_interval_s: float,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        record_time_attribute: str | None = None,
    ) -> None:
        self.shard = shard
        self.finished = threading.Event()
        self.polled = 0
        self.filtered_out = 0
        self._client = client
        self._stream_arn = stream_arn
        self._iterator_type = iterator_type
        self._function = function
        self._function_arn = function_arn
        self._settings = settings
        self._patterns = filter_patterns
        self._destination = destination
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._stop = stop
        self._clock = clock
        self._time_attribute = record_time_attribute
        self._condition = threading.Condition()
        self._lanes: list[deque[_Pending]] = [
            deque() for _ in range(settings.parallelization_factor)
        ]
        self._lane_bytes = [0] * settings.parallelization_factor
        self._buffered = 0
        # Read ahead at most this much; beyond it the reader waits for the lanes (back-pressure).
        self._buffer_cap = max(10_000, 10 * settings.batch_size)
        self._reader_done = False
        self._threads: list[threading.Thread] = []
        self._prefetched: str | None = None

    def prefetch_iterator(self) -> None:
        """Get the first shard iterator now (LATEST must mean "from this moment")."""
        self._prefetched = self._new_iterator(None)

    # --------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        name = f"esm-{self.shard.shard_id[-8:]}"
        reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._threads = [reader] + [
            threading.Thread(
                target=self._lane_loop, args=(lane,), name=f"{name}-lane{lane}", daemon=True
            )
            for lane in range(len(self._lanes))
        ]
        # Lanes first: a reader that finishes at once (a short closed shard) joins them.
        for thread in [*self._threads[1:], reader]:
            thread.start()

    def wake(self) -> None:
        """Wake every waiting thread (called after the stop event is set)."""
        with self._condition:
            self._condition.notify_all()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------------ reader
    def _read_loop(self) -> None:
        try:
            self._read_shard()
        finally:
            self._client.close_thread_connection()
            with self._condition:
                self._reader_done = True
                self._condition.notify_all()
            for thread in self._threads[1:]:
                thread.join()
            if not self._stop.is_set():
                self.finished.set()

    def _read_shard(self) -> None:
        last_sequence: str | None = None
        iterator, self._prefetched = self._prefetched, None
        while not self._stop.is_set():
            try:
                if iterator is None:
                    iterator = self._new_iterator(last_sequence)
                raw_records, next_iterator = self._client.get_records(iterator, _RECORDS_PER_READ)
            except (ExpiredIteratorError, TrimmedDataError):
                iterator = None  # a fresh iterator after the last record we have
                continue
            except (StreamReadError, OSError) as error:
                _log.warning("shard %s: %s; retrying", self.shard.shard_id, error)
                iterator = None
                self._stop.wait(self._poll_interval_s)
                continue
            if raw_records:
                last_sequence = raw_records[-1]["dynamodb"]["SequenceNumber"]
                self._accept(raw_records)
            if next_iterator is None:
                return  # a closed shard, read to its end
            iterator = next_iterator
            if not raw_records:
                self._stop.wait(self._poll_interval_s)
            self._wait_for_room()

    def _new_iterator(self, last_sequence: str | None) -> str:
        if last_sequence is None:
            return self._client.shard_iterator(
                self._stream_arn, self.shard.shard_id, self._iterator_type
            )
        return self._client.shard_iterator(
            self._stream_arn, self.shard.shard_id, "AFTER_SEQUENCE_NUMBER", last_sequence
        )

    def _accept(self, raw_records: list[dict[str, Any]]) -> None:
        read_at = self._clock()
        accepted: list[tuple[int, _Pending]] = []
        filtered = 0
        for raw in raw_records:
            record = to_lambda_record(raw, self._stream_arn)
            if not matches_any(self._patterns, record):
                filtered += 1
                continue
            accepted.append((self._lane_of(record), self._pending(record, read_at)))
        with self._condition:
            self.polled += len(raw_records)
            self.filtered_out += filtered
            for lane, pending in accepted:
                self._lanes[lane].append(pending)
                self._lane_bytes[lane] += pending.size
            self._buffered += len(accepted)
            self._condition.notify_all()
        self._emit("PolledEventCount", len(raw_records))
        if filtered:
            self._emit("FilteredOutEventCount", filtered)

    def _wait_for_room(self) -> None:
        with self._condition:
            while self._buffered >= self._buffer_cap and not self._stop.is_set():
                self._condition.wait(self._poll_interval_s)

    def _lane_of(self, record: Mapping[str, Any]) -> int:
        if len(self._lanes) == 1:
            return 0
        keys = json.dumps(record["dynamodb"].get("Keys", {}), sort_keys=True)
        return zlib.crc32(keys.encode()) % len(self._lanes)

    def _pending(self, record: dict[str, Any], read_at: float) -> _Pending:
        stream = record["dynamodb"]
        created_s = float(stream.get("ApproximateCreationDateTime", read_at))
        own_ms = self._own_time_ms(stream.get("NewImage"))
        if own_ms is not None:
            arrival_s = own_ms / 1000.0
        else:
            arrival_s = min(read_at, created_s + _CREATION_TIME_RESOLUTION_S)
        size = len(json.dumps(record, separators=(",", ":")))
        return _Pending(record, size, arrival_s, own_ms if own_ms is not None else created_s * 1000)

    def _own_time_ms(self, image: Mapping[str, Any] | None) -> float | None:
        if not self._time_attribute or not image:
            return None
        value = image.get(self._time_attribute)
        try:
            return float(value["N"]) if isinstance(value, Mapping) else None
        except (KeyError, ValueError):
            return None

    # ------------------------------------------------------------------------- lanes
    def _lane_loop(self, lane: int) -> None:
        idle_since = time.monotonic()
        while True:
            batch = self._take_batch(lane, idle_since)
            if batch is None:
                return
            self._process(_Work(batch))
            idle_since = time.monotonic()

    def _take_batch(self, lane: int, idle_since: float) -> list[_Pending] | None:
        queue = self._lanes[lane]
        settings = self._settings
        with self._condition:
            while True:
                if self._stop.is_set():
                    return None
                if queue:
                    deadline = idle_since + settings.batching_window_s
                    full = (
                        len(queue) >= settings.batch_size
                        or self._lane_bytes[lane] >= _PAYLOAD_BUDGET_BYTES
                    )
                    remaining = deadline - time.monotonic()
                    if full or remaining <= 0:
                        break
                    self._condition.wait(remaining)
                elif self._reader_done:
                    return None
                else:
                    self._condition.wait()
            batch: list[_Pending] = []
            total = 0
            while queue and len(batch) < settings.batch_size:
                if batch and total + queue[0].size > _PAYLOAD_BUDGET_BYTES:
                    break
                pending = queue.popleft()
                batch.append(pending)
                total += pending.size
            self._lane_bytes[lane] -= total
            self._buffered -= len(batch)
            self._condition.notify_all()
            return batch

    def _process(self, first: _Work) -> None:
        """Deliver one batch until it is done: succeeded, split and done, or discarded."""
        work: deque[_Work] = deque([first])
        settings = self._settings
        while work and not self._stop.is_set():
            current = work[0]
            if not self._drop_expired(current):
                work.popleft()
                continue
            records = [pending.record for pending in current.records]
            self._emit_batch_metrics(current.records)
            result = self._function.invoke({"Records": records})
            current.invokes += 1
            if self._stop.is_set():
                return  # shutting down: act on nothing, start nothing
            outcome = interpret(
                result.status,
                result.payload,
                result.error_type,
                records,
                report_batch_item_failures=settings.report_batch_item_failures,
            )
            current.last_status_code = 429 if outcome.kind == "throttled" else 200
            current.last_function_error = outcome.function_error
            if outcome.kind == "success":
                work.popleft()
            elif outcome.kind == "throttled":
                self._stop.wait(self._poll_interval_s)  # not counted: it never ran
            elif outcome.kind == "partial":
                current.records = current.records[outcome.failed_from :]
                self._after_failure(work, current, outcome, bisect=False)
            else:
                self._after_failure(work, current, outcome, bisect=settings.bisect_on_error)

    def _after_failure(
        self, work: deque[_Work], current: _Work, outcome: BatchOutcome, *, bisect: bool
    ) -> None:
        current.attempts += 1
        if bisect and len(current.records) > 1:
            # A split starts each half's retry count afresh, so bisection always reaches the
            # single poison record whatever MaximumRetryAttempts is.
            middle = len(current.records) // 2
            work.popleft()
            work.appendleft(_Work(current.records[middle:]))
            work.appendleft(_Work(current.records[:middle]))
            return
        limit = self._settings.retry_attempts
        if limit >= 0 and current.attempts > limit:
            self._discard(current, current.records, "RetryAttemptsExhausted")
            work.popleft()
            return
        _log.debug("retrying %d records after %s", len(current.records), outcome.reason)
        self._stop.wait(self._poll_interval_s)

    def _drop_expired(self, current: _Work) -> bool:
        """Discard leading records older than MaximumRecordAge; False when none is left."""
        max_age = self._settings.max_record_age_s
        if max_age >= 0:
            now = self._clock()
            expired = 0
            for pending in current.records:
                if now - pending.arrival_s <= max_age:
                    break
                expired += 1
            if expired:
                self._discard(current, current.records[:expired], "RecordAgeExceeded")
                current.records = current.records[expired:]
        return bool(current.records)

    def _discard(self, current: _Work, records: list[_Pending], condition: Condition) -> None:
        self._destination.send(
            failure_record(
                records=[pending.record for pending in records],
                shard_id=self.shard.shard_id,
                stream_arn=self._stream_arn,
                function_arn=self._function_arn,
                condition=condition,
                # AWS recorded: a batch that aged out counts one invocation and carries no
                # responseContext, whether or not it was ever invoked.
                approximate_invoke_count=(
                    max(current.invokes, 1) if condition == "RecordAgeExceeded" else current.invokes
                ),
                function_error=current.last_function_error,
                status_code=None if condition == "RecordAgeExceeded" else current.last_status_code,
                now_s=self._clock(),
            )
        )
        self._emit("OnFailureDestinationDeliveredEventCount", len(records), condition=condition)

    # ----------------------------------------------------------------------- metrics
    def _emit_batch_metrics(self, batch: list[_Pending]) -> None:
        newest_ms = max(pending.time_ms for pending in batch)
        self._emit("BatchSize", len(batch))
        self._emit("IteratorAge", max(0.0, self._clock() * 1000 - newest_ms), "Milliseconds")

    def _emit(self, metric: str, value: float, unit: str = "Count", **extra: Any) -> None:
        if self._metrics is not None:
            self._metrics.emit(
                self._function.variant,
                self._function.name,
                metric,
                value,
                unit,
                shard_id=self.shard.shard_id,
                **extra,
            )
