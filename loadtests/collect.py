"""Collection of a trial's server side: items, parked records and metrics, into the run folder.

The stage-specific reading lives behind :class:`StageSide` (``collect_local`` reads DynamoDB
Local, the failure file and the metrics log; ``collect_aws`` reads DynamoDB, SQS and
CloudWatch). This module owns what is the same for both: when the trial has settled, which items
belong to it, and how items and destination records become SERVER and PARKED rows.

Memory at scale: a trial of tens of millions of items is never held. Each poll while the
trial settles scans the run's items page by page and turns them into SERVER rows in parts of at
most ``part_rows``, each written to a :class:`ServerSink` as soon as it is full: tentatively,
since the next poll reads every item again and replaces them; the parts of the last poll are
kept. Between polls only ids stay in memory: those still outstanding (pending, or accepted and
not seen yet) and the id -> trial map of the trial's items, which later trials of the variant
need to skip them (about 150 bytes an item; an item as a dict is 1-2 KB).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from loadtests.collect_wait import wait_until_settled
from loadtests.outcomes import ACCEPTED_OUTCOMES, TERMINAL_STATUSES
from reports.schema import METRICS, PARKED, SERVER, empty_frame

__all__ = [
    "ACCEPTED_OUTCOMES",
    "PART_PROGRESS_S",
    "SERVER_PART_ROWS",
    "FrameSink",
    "ServerParts",
    "ServerSink",
    "StageSide",
    "TrialCollection",
    "TrialWindow",
    "collect_trial",
    "parked_rows",
    "server_rows",
]

TERMINAL = TERMINAL_STATUSES
# Server and client clocks differ (on AWS); an item a little outside the client's window is
# still this trial's.
WINDOW_SLACK_MS = 5_000.0
# SERVER rows per part written while collecting: a part is built from dicts (1-2 KB per row
# before it becomes a frame), so this bounds collection's memory to a few hundred MB.
SERVER_PART_ROWS = 100_000

# At most one "items written" line per this many seconds of a long scan.
PART_PROGRESS_S = 15.0


class ServerSink(Protocol):
    """Where one trial's SERVER rows go, a part at a time, as collection reads them. Each poll
    writes the trial's rows afresh: :meth:`discard` drops the parts written since the last
    call (a poll is starting over), :meth:`keep` makes them the trial's rows (the last poll)."""

    def write(self, part: pd.DataFrame) -> None: ...

    def discard(self) -> None: ...

    def keep(self) -> None: ...


class FrameSink:
    """A :class:`ServerSink` holding the parts in memory (small runs, tests): :meth:`frame`."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def write(self, part: pd.DataFrame) -> None:
        self.parts.append(part)

    def discard(self) -> None:
        self.parts = []

    def keep(self) -> None:
        pass

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.parts, ignore_index=True) if self.parts else empty_frame(SERVER)


class StageSide(Protocol):
    """What collection reads from one stage (local or AWS) for one run."""

    source: str
    """Metrics source label: 'local' or 'cloudwatch'."""

    def check(self) -> None:
        """Raise an AsyncbenchError saying what to do if the stage's tables cannot be read."""

    def begin_trial(self) -> None:
        """Remember where the failure destination stands, so only this trial's records count."""

    def items(self, variant: str) -> Iterable[dict[str, Any]]:
        """All items of the run on the variant's table, as plain dicts (read once, in order)."""

    def new_parked_records(self) -> list[dict[str, Any]]:
        """Failure-destination records that arrived since the last call (or begin_trial)."""

    def resolve(self, record: Mapping[str, Any]) -> list[str]:
        """Request ids of the stream records a destination record names ([] if unresolvable)."""

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        """METRICS rows (without run_id/trial) about ``variant`` within the window."""


@dataclass(frozen=True)
class TrialWindow:
    run_id: str
    trial: int
    variant: str
    started_at_ms: float
    ended_at_ms: float


@dataclass(frozen=True)
class TrialCollection:
    server: pd.DataFrame
    """The trial's SERVER rows; empty when a ``server_sink`` took them part by part."""
    parked: pd.DataFrame
    metrics: pd.DataFrame
    unfinished: int
    """Accepted requests neither terminal nor parked at the deadline (or missing entirely)."""
    settled: bool
    collected_at_ms: float
    trials: Mapping[str, int] = field(default_factory=dict)
    """Trial of each collected item, by request id (later trials of the variant skip them)."""
    items: int = 0
    """SERVER rows collected (written to the sink, or in ``server``)."""
    server_parts: int = 0
    """Parts the ``server_sink`` kept (0 without one)."""

    @property
    def request_ids(self) -> frozenset[str]:
        """Ids of the items collected here (so later trials of the variant skip them)."""
        return frozenset(self.trials)


def _assign(item: Mapping[str, Any], window: TrialWindow, earlier: Sequence[TrialWindow]) -> int:
    """Trial of an item no client row names: the window its accepted time falls in."""
    accepted = item.get("accepted_at_ms")
    if not isinstance(accepted, int | float):
        return window.trial
    for candidate in (window, *reversed(earlier)):
        if candidate.variant != window.variant:
            continue
        if (
            candidate.started_at_ms - WINDOW_SLACK_MS
            <= accepted
            <= candidate.ended_at_ms + WINDOW_SLACK_MS
        ):
            return candidate.trial
    return window.trial


def server_rows(
    items: Iterable[Mapping[str, Any]],
    window: TrialWindow,
    trials: Mapping[str, int],
    collected_at_ms: float,
) -> pd.DataFrame:
    """Items -> SERVER rows; ``trials`` maps each item id to its trial."""
    rows = [
        _server_row(item, window, trials.get(str(item["id"]), window.trial), collected_at_ms)
        for item in items
    ]
    if not rows:
        return empty_frame(SERVER)
    return pd.DataFrame(rows)


def _server_row(
    item: Mapping[str, Any], window: TrialWindow, trial: int, collected_at_ms: float
) -> dict[str, Any]:
    request = item.get("request")
    return {
        "run_id": window.run_id,
        "trial": trial,
        "variant": window.variant,
        "request_id": str(item["id"]),
        "status": item.get("status", "PENDING"),
        "attempts": item.get("attempts"),
        "duplicates": item.get("duplicates"),
        "accepted_at_ms": item.get("accepted_at_ms"),
        "started_at_ms": item.get("started_at_ms"),
        "processed_at_ms": item.get("processed_at_ms"),
        "error": item.get("error"),
        "cold_start": item.get("cold_start"),
        "ttl": item.get("ttl"),
        "request_bytes": len(request.encode("utf-8")) if isinstance(request, str) else None,
        "collected_at_ms": collected_at_ms,
    }


class ServerParts:
    """SERVER rows gathered into parts of at most ``part_rows``, each written to ``write`` as
    soon as it is full (and the last one by :meth:`close`): never more than one part held."""

    def __init__(
        self,
        window: TrialWindow,
        collected_at_ms: float,
        write: Callable[[pd.DataFrame], None],
        *,
        part_rows: int = SERVER_PART_ROWS,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if part_rows < 1:
            raise ValueError("part_rows must be at least 1")
        self.window = window
        self.collected_at_ms = collected_at_ms
        self.write = write
        self.part_rows = part_rows
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.items = 0
        self.parts = 0
        self._said = time.monotonic()

    def add(self, item: Mapping[str, Any], trial: int) -> None:
        self.rows.append(_server_row(item, self.window, trial, self.collected_at_ms))
        if len(self.rows) >= self.part_rows:
            self._flush()
            # Only a long scan says anything: a trial of a few thousand items stays quiet.
            if self.progress is not None and time.monotonic() - self._said >= PART_PROGRESS_S:
                self._said = time.monotonic()
                self.progress(
                    f"collect: trial {self.window.trial} {self.window.variant}: "
                    f"{self.items:,} items read into {self.parts:,} parts so far"
                )

    def close(self) -> None:
        if self.rows:
            self._flush()

    def _flush(self) -> None:
        frame, self.rows = pd.DataFrame(self.rows), []
        self.write(frame)
        self.items += len(frame)
        self.parts += 1


def _timestamp_ms(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        return None


def parked_rows(
    records: Iterable[tuple[Mapping[str, Any], Sequence[str]]],
    window: TrialWindow,
    trials: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Destination records with their resolved ids -> PARKED rows (one per stream record).

    A row belongs to the trial of its request (``trials``: id -> trial) when known: a record
    parked after its own trial's collection ended is read by a later trial's.
    """
    trials = trials or {}
    rows = []
    for record, request_ids in records:
        info = record.get("DDBStreamBatchInfo") or {}
        context = record.get("requestContext") or {}
        base = {
            "run_id": window.run_id,
            "trial": window.trial,
            "variant": "storage_first",
            "shard_id": info.get("shardId"),
            "start_sequence_number": info.get("startSequenceNumber"),
            "end_sequence_number": info.get("endSequenceNumber"),
            "batch_size": info.get("batchSize"),
            "condition": context.get("condition"),
            "approximate_invoke_count": context.get("approximateInvokeCount"),
            "timestamp_ms": _timestamp_ms(record.get("timestamp")),
            "raw": json.dumps(record, sort_keys=True),
        }
        resolved: Sequence[str | None] = request_ids or [None]
        for request_id in resolved:
            trial = trials.get(request_id, window.trial) if request_id else window.trial
            rows.append({**base, "request_id": request_id, "trial": trial})
    if not rows:
        return empty_frame(PARKED)
    return pd.DataFrame(rows)


class _TrialState:
    """What one trial's collection knows between polls: ids, never the items."""

    def __init__(
        self,
        side: StageSide,
        window: TrialWindow,
        client_rows: pd.DataFrame,
        skip_ids: frozenset[str],
        earlier: Sequence[TrialWindow],
        sink: ServerSink,
        *,
        part_rows: int = SERVER_PART_ROWS,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.side = side
        self.window = window
        self.skip_ids = skip_ids
        self.earlier = earlier
        self.sink = sink
        self.part_rows = part_rows
        self.progress = progress
        trial_rows = client_rows[client_rows["trial"] == window.trial]
        ids = trial_rows["request_id"].dropna().astype(str)
        self.client_ids = frozenset(ids)
        accepted = trial_rows[trial_rows["outcome"].isin(ACCEPTED_OUTCOMES)]
        accepted_ids = accepted["request_id"].dropna().astype(str)
        self.unseen: set[str] = set(accepted_ids)
        """Accepted requests no scan has returned an item for yet."""
        self.pending: set[str] = set()
        """This trial's items that were not terminal at the last scan."""
        self.trials: dict[str, int] = {}
        """Trial of each item the last scan read, by request id."""
        self.parked: list[tuple[dict[str, Any], list[str]]] = []
        self.parked_ids: set[str] = set()
        self.items = self.parts = 0

    def refresh(self) -> int:
        """Read new destination records, then scan the items into SERVER parts (replacing the
        previous poll's); return how many requests are still outstanding."""
        for record in self.side.new_parked_records():
            request_ids = self.side.resolve(record)
            self.parked.append((record, request_ids))
            self.parked_ids.update(request_ids)
        self.sink.discard()
        self.trials = {}
        parts = ServerParts(
            self.window, time.time() * 1000.0, self.sink.write, part_rows=self.part_rows,
            progress=self.progress,
        )  # fmt: skip
        pending: set[str] = set()
        for item in self.side.items(self.window.variant):
            request_id = str(item["id"])
            if request_id in self.skip_ids:
                continue
            trial = (
                self.window.trial
                if request_id in self.client_ids
                else _assign(item, self.window, self.earlier)
            )
            self.unseen.discard(request_id)
            if trial == self.window.trial and item.get("status") not in TERMINAL:
                pending.add(request_id)
            self.trials[request_id] = trial
            parts.add(item, trial)
        parts.close()
        self.pending = pending
        self.items, self.parts = parts.items, parts.parts
        return self.outstanding()

    def outstanding(self) -> int:
        return len((self.pending | self.unseen) - self.parked_ids)


def collect_trial(
    side: StageSide,
    window: TrialWindow,
    client_rows: pd.DataFrame,
    *,
    timeout_s: float,
    skip_ids: frozenset[str] = frozenset(),
    earlier: Sequence[TrialWindow] = (),
    earlier_trials: Mapping[str, int] | None = None,
    abort: threading.Event | None = None,
    on_poll: Callable[[int, float], None] | None = None,
    server_sink: ServerSink | None = None,
    part_rows: int = SERVER_PART_ROWS,
    progress: Callable[[str], None] | None = None,
) -> TrialCollection:
    """Wait (up to ``timeout_s``) for the trial to settle, reading its server side as it goes.

    ``client_rows`` are the run's CLIENT rows (at least this trial's); ``skip_ids`` are items
    already collected by earlier trials of the run; ``earlier`` their windows, to place items
    no client row names, and ``earlier_trials`` (id -> trial) the trials of items they
    collected, so a late parked record is attributed to its own trial. An ``abort`` ends the
    wait early and skips the metrics. With a ``server_sink`` the SERVER rows go to it in parts
    of at most ``part_rows`` (``progress`` gets a line now and then during a long scan) and the
    result's ``server`` is empty; without one they are returned in ``server``.
    """
    sink = server_sink or FrameSink()
    state = _TrialState(
        side, window, client_rows, skip_ids, earlier, sink, part_rows=part_rows,
        progress=progress,
    )  # fmt: skip
    # Every poll reads the items into parts; the last poll's are the trial's rows.
    settled = wait_until_settled(state.refresh, timeout_s=timeout_s, abort=abort, on_poll=on_poll)
    sink.keep()
    collected_at_ms = time.time() * 1000.0
    if abort is not None and abort.is_set():
        metric_rows: list[dict[str, Any]] = []
    else:
        metric_rows = side.metrics(window.variant, window.started_at_ms, collected_at_ms)
    metrics = (
        pd.DataFrame(
            [{**row, "run_id": window.run_id, "trial": window.trial} for row in metric_rows]
        )
        if metric_rows
        else empty_frame(METRICS)
    )
    return TrialCollection(
        server=sink.frame() if isinstance(sink, FrameSink) else empty_frame(SERVER),
        parked=parked_rows(state.parked, window, {**(earlier_trials or {}), **state.trials}),
        metrics=metrics,
        unfinished=state.outstanding(),
        settled=settled,
        collected_at_ms=collected_at_ms,
        trials=state.trials,
        items=state.items,
        server_parts=0 if isinstance(sink, FrameSink) else state.parts,
    )
