"""The local event source mapping: DynamoDB Local's stream -> a local Lambda function.

Behaves like AWS Lambda's mapping for DynamoDB Streams (Lambda developer guide: "Using AWS Lambda
with Amazon DynamoDB", "Lambda parameters for Amazon DynamoDB event source mappings",
"Configuring partial batch response with DynamoDB and Lambda", "Control which events Lambda
sends to your function"):

- every shard is polled (4 times a second by default) by its own :class:`ShardConsumer`;
  new shards are discovered by describing the stream, and a child shard starts only once its
  parent is read to the end and fully processed (shard lineage keeps per-item order);
- StartingPosition TRIM_HORIZON or LATEST applies to the shards present at start; shards that
  appear later are read from their beginning, so nothing written after start is missed;
- FilterCriteria, BatchSize, MaximumBatchingWindowInSeconds, BisectBatchOnFunctionError,
  MaximumRetryAttempts, MaximumRecordAgeInSeconds, ReportBatchItemFailures,
  ParallelizationFactor and the on-failure destination: see :mod:`.shard_consumer`.

:meth:`start` returns once the shards present at start have iterators (so LATEST means "after
start() returned"); :meth:`stop` returns promptly and never acts on a batch after it is called.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from asyncbench.errors import LocalStageError
from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION
from stack.local.event_source_mapping.event_filter import validate_patterns
from stack.local.event_source_mapping.failure_destination import FailureDestination
from stack.local.event_source_mapping.settings import MappingSettings
from stack.local.event_source_mapping.shard_consumer import (
    InvokableFunction,
    MetricsSink,
    ShardConsumer,
)
from stack.local.event_source_mapping.stream_reader import (
    Shard,
    StreamNotFoundError,
    StreamReadError,
    StreamsClient,
)

__all__ = ["EventSourceMapping", "MappingSettings"]

_log = logging.getLogger(__name__)

_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


class EventSourceMapping:
    """Polls a stream's shards and invokes ``function`` with batches of stream records."""

    # One mapping per function and stream, as AWS allows (a second: 409 ResourceConflict).
    _running: ClassVar[set[tuple[str, str]]] = set()
    _running_lock = threading.Lock()

    def __init__(
        self,
        *,
        dynamodb_endpoint: str,
        stream_arn: str,
        function: InvokableFunction,
        config: StackConfig,
        failure_destination: Path,
        metrics: MetricsSink | None = None,
        poll_interval_s: float = 0.25,
        starting_position: str = "TRIM_HORIZON",
        filter_patterns: Sequence[Mapping[str, Any]] = (STREAM_FILTER_PATTERN,),
        settings: MappingSettings | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        record_time_attribute: str | None = "accepted_at_ms",
        discovery_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if starting_position not in _STARTING_POSITIONS:
            raise LocalStageError(
                f"starting position {starting_position!r} must be one of {_STARTING_POSITIONS}"
            )
        self.stream_arn = stream_arn
        self.function = function
        self.settings = settings or MappingSettings.from_config(config)
        self.failure_destination = FailureDestination(failure_destination)
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._starting_position = starting_position
        validate_patterns(filter_patterns)  # AWS refuses a bad pattern at creation
        self._patterns = tuple(filter_patterns)
        self._time_attribute = record_time_attribute
        self._discovery_interval_s = discovery_interval_s
        self._clock = clock
        self._function_arn = getattr(function, "arn", None) or (
            f"arn:aws:lambda:local:000000000000:function:{function.name}"
        )
        self._client = StreamsClient(
            dynamodb_endpoint,
            region=region or LOCAL_REGION,
            access_key_id=access_key_id or LOCAL_CREDENTIALS["aws_access_key_id"],
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._consumers: dict[str, ShardConsumer] = {}
        self._known: dict[str, Shard] = {}
        self._discovery: threading.Thread | None = None
        self._started = False

    # --------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start polling; raises LocalStageError when the stream cannot be read."""
        with self._lock:
            if self._started:
                raise LocalStageError("this event source mapping is already started")
            key = (self._function_arn, self.stream_arn)
            with EventSourceMapping._running_lock:
                if key in EventSourceMapping._running:
                    raise LocalStageError(
                        "ResourceConflictException: an event source mapping of "
                        f"{self.stream_arn} to {self._function_arn} already exists; stop it first"
                    )
                EventSourceMapping._running.add(key)
            self._started = True
            try:
                shards = self._client.describe_shards(self.stream_arn)
            except StreamNotFoundError as error:
                with EventSourceMapping._running_lock:
                    EventSourceMapping._running.discard(key)
                raise LocalStageError(
                    f"stream {self.stream_arn} not found in DynamoDB Local ({error}); was the "
                    "table deleted or DynamoDB Local restarted? Restart the local stage"
                ) from None
            initial = self._starting_position
            for shard in shards:
                self._known[shard.shard_id] = shard
                if initial == "LATEST" and shard.ending_sequence_number is not None:
                    # A shard closed before we started holds nothing after LATEST.
                    self._consumers[shard.shard_id] = _finished_placeholder(self, shard)
            self._start_ready_shards(initial_position=initial)
            self._discovery = threading.Thread(
                target=self._discover_loop, name="esm-discovery", daemon=True
            )
            self._discovery.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling and invoking; waits up to ``timeout_s`` for in-flight invocations."""
        self._stop.set()
        with self._lock:
            consumers = list(self._consumers.values())
        for consumer in consumers:
            consumer.wake()
        deadline = time.monotonic() + timeout_s
        if self._discovery is not None:
            self._discovery.join(max(0.0, deadline - time.monotonic()))
        for consumer in consumers:
            consumer.join(max(0.0, deadline - time.monotonic()))
        self._client.close()
        if self._started:
            with EventSourceMapping._running_lock:
                EventSourceMapping._running.discard((self._function_arn, self.stream_arn))

    def __enter__(self) -> EventSourceMapping:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------ status
    @property
    def polled_count(self) -> int:
        """Stream records read so far (before filtering), over all shards."""
        with self._lock:
            return sum(consumer.polled for consumer in self._consumers.values())

    @property
    def filtered_out_count(self) -> int:
        with self._lock:
            return sum(consumer.filtered_out for consumer in self._consumers.values())

    # ------------------------------------------------------------------------- private
    def _discover_loop(self) -> None:
        try:
            while not self._stop.wait(self._discovery_interval_s):
                try:
                    shards = self._client.describe_shards(self.stream_arn)
                except (StreamReadError, OSError) as error:
                    _log.warning("describing %s failed: %s", self.stream_arn, error)
                    continue
                with self._lock:
                    for shard in shards:
                        self._known.setdefault(shard.shard_id, shard)
                    self._start_ready_shards(initial_position=None)
        finally:
            self._client.close_thread_connection()

    def _start_ready_shards(self, *, initial_position: str | None) -> None:
        """Start every known shard whose parent is done (caller holds the lock)."""
        for shard_id, shard in self._known.items():
            if shard_id in self._consumers or self._stop.is_set():
                continue
            parent = self._consumers.get(shard.parent_shard_id or "")
            parent_known = shard.parent_shard_id in self._known
            if parent_known and (parent is None or not parent.finished.is_set()):
                continue  # lineage: the parent's records first
            consumer = ShardConsumer(
                client=self._client,
                stream_arn=self.stream_arn,
                shard=shard,
                iterator_type=initial_position or "TRIM_HORIZON",
                function=self.function,
                function_arn=self._function_arn,
                settings=self.settings,
                filter_patterns=self._patterns,
                destination=self.failure_destination,
                metrics=self._metrics,
                poll_interval_s=self._poll_interval_s,
                stop=self._stop,
                clock=self._clock,
                record_time_attribute=self._time_attribute,
            )
            if initial_position == "LATEST":
                # Take the iterator now, so "latest" means "after start() returned".
                consumer.prefetch_iterator()
            self._consumers[shard_id] = consumer
            consumer.start()


def _finished_placeholder(mapping: EventSourceMapping, shard: Shard) -> ShardConsumer:
    consumer = ShardConsumer(
        client=mapping._client,
        stream_arn=mapping.stream_arn,
        shard=shard,
        iterator_type="LATEST",
        function=mapping.function,
        function_arn=mapping._function_arn,
        settings=mapping.settings,
        filter_patterns=(),
        destination=mapping.failure_destination,
        metrics=None,
        poll_interval_s=mapping._poll_interval_s,
        stop=mapping._stop,
    )
    consumer.finished.set()
    return consumer
