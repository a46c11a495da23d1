"""Collection of a trial's server side: items, parked records and metrics, into the run folder.

The stage-specific reading lives behind :class:`StageSide` (``collect_local`` reads DynamoDB
Local, the failure file and the metrics log; ``collect_aws`` reads DynamoDB, SQS and
CloudWatch). This module owns what is the same for both: when the trial has settled, which items
belong to it, and how items and destination records become SERVER and PARKED rows.
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
    parked: pd.DataFrame
    metrics: pd.DataFrame
    unfinished: int
    """Accepted requests neither terminal nor parked at the deadline (or missing entirely)."""
    settled: bool
    collected_at_ms: float
    request_ids: frozenset[str] = field(default_factory=frozenset)
    """Ids of the items collected here (so later trials of the variant skip them)."""
    trials: Mapping[str, int] = field(default_factory=dict)
    """Trial of each collected item, by request id."""


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
    rows = []
    for item in items:
        request = item.get("request")
        rows.append(
            {
                "run_id": window.run_id,
                "trial": trials.get(str(item["id"]), window.trial),
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
        )
    if not rows:
        return empty_frame(SERVER)
    return pd.DataFrame(rows)


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
    """What one trial's collection has seen so far (refreshed on each poll)."""

    def __init__(
        self,
        side: StageSide,
        window: TrialWindow,
        client_rows: pd.DataFrame,
        skip_ids: frozenset[str],
        earlier: Sequence[TrialWindow],
    ) -> None:
        self.side = side
        self.window = window
        self.skip_ids = skip_ids
        self.earlier = earlier
        trial_rows = client_rows[client_rows["trial"] == window.trial]
        ids = trial_rows["request_id"].dropna().astype(str)
        self.client_ids = frozenset(ids)
        accepted = trial_rows[trial_rows["outcome"].isin(ACCEPTED_OUTCOMES)]
        self.accepted_ids = frozenset(accepted["request_id"].dropna().astype(str))
        self.items: dict[str, dict[str, Any]] = {}
        self.trials: dict[str, int] = {}
        self.parked: list[tuple[dict[str, Any], list[str]]] = []
        self.parked_ids: set[str] = set()

    def refresh(self) -> int:
        """Read items and new destination records; return how many are still outstanding."""
        for record in self.side.new_parked_records():
            request_ids = self.side.resolve(record)
            self.parked.append((record, request_ids))
            self.parked_ids.update(request_ids)
        self.items = {}
        for item in self.side.items(self.window.variant):
            request_id = str(item["id"])
            if request_id in self.skip_ids:
                continue
            trial = (
                self.window.trial
                if request_id in self.client_ids
                else _assign(item, self.window, self.earlier)
            )
            self.items[request_id] = item
            self.trials[request_id] = trial
        return self.outstanding()

    def outstanding(self) -> int:
        pending = {
            request_id
            for request_id, item in self.items.items()
            if self.trials[request_id] == self.window.trial
            and item.get("status") not in TERMINAL
            and request_id not in self.parked_ids
        }
        missing = {
            request_id
            for request_id in self.accepted_ids
            if request_id not in self.items and request_id not in self.parked_ids
        }
        return len(pending | missing)


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
) -> TrialCollection:
    """Wait (up to ``timeout_s``) for the trial to settle, then read its server side.

    ``client_rows`` are the run's CLIENT rows (at least this trial's); ``skip_ids`` are items
    already collected by earlier trials of the run; ``earlier`` their windows, to place items
    no client row names, and ``earlier_trials`` (id -> trial) the trials of items they
    collected, so a late parked record is attributed to its own trial. An ``abort`` ends the
    wait early and skips the metrics.
    """
    state = _TrialState(side, window, client_rows, skip_ids, earlier)
    settled = wait_until_settled(state.refresh, timeout_s=timeout_s, abort=abort, on_poll=on_poll)
    collected_at_ms = time.time() * 1000.0
    unfinished = state.outstanding()
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
        server=server_rows(state.items.values(), window, state.trials, collected_at_ms),
        parked=parked_rows(state.parked, window, {**(earlier_trials or {}), **state.trials}),
        metrics=metrics,
        unfinished=unfinished,
        settled=settled,
        collected_at_ms=collected_at_ms,
        request_ids=frozenset(state.items),
        trials={request_id: state.trials[request_id] for request_id in state.items},
    )
