"""Locust users that send a trial's requests on the pacer's schedule and record each attempt.

Importing this module imports Locust, which monkey-patches the process for gevent: only the
load-generator processes (``loadtests.engine``, ``loadtests.distributed``, the locustfile)
import it. One :class:`TrialContext` per process holds what its users share across the run;
each trial is a :class:`TrialRound` (pacer, body factory, counters) of a :class:`TrialSetup`
(whose rows, which recorder). Users are built for the context by :func:`make_user_class`, so
nothing lives in module-level mutable state.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from locust import FastHttpUser, constant, task

from loadtests.body import BodyFactory
from loadtests.outcomes import ACCEPTED_OUTCOMES, TERMINAL_STATUSES
from loadtests.pacing import Pacer, Schedule, Slot
from loadtests.recorder import Recorder
from loadtests.scenario import Scenario, Stage

__all__ = [
    "POLL_NAME",
    "POST_NAME",
    "TrialContext",
    "TrialRound",
    "TrialSetup",
    "make_user_class",
    "outcome_for",
]

POST_NAME = "POST /requests"
POLL_NAME = "GET /requests/{id}"


def outcome_for(status_code: int, error: BaseException | None) -> str:
    """The client-visible outcome (reports.schema.OUTCOMES) of one attempt."""
    if status_code == 0:
        timed_out = isinstance(error, TimeoutError | socket.timeout | gevent.Timeout) or (
            "timed out" in str(error).lower() or "timeout" in type(error).__name__.lower()
        )
        return "timeout" if timed_out else "connection_error"
    if status_code == 202:
        return "accepted"
    if 200 <= status_code < 300:
        return "succeeded"
    if status_code == 429:
        return "throttled"
    if 400 <= status_code < 500:
        return "rejected"
    return "server_error"


@dataclass(frozen=True)
class TrialSetup:
    """Who the rows of a trial belong to and what its requests ask for."""

    run_id: str
    trial: int
    variant: str
    base_url: str
    scenario: Scenario
    worker: str
    recorder: Recorder | None
    """None when recording is off (the overhead benchmark's baseline)."""


@dataclass
class TrialRound:
    """One trial as the users of one process live it: its slots, bodies and counters."""

    setup: TrialSetup
    pacer: Pacer
    bodies: BodyFactory
    zero_ms: float
    done: Event = field(default_factory=Event)
    """Set when the trial is over for this process; users then wait for the next round."""
    closed: bool = False
    counted: int = 0
    """POST attempts Locust reported through events.request."""
    recorded: int = 0
    first_attempts: int = 0
    errors: int = 0
    active_users: int = 0
    """Users serving this round right now."""

    @property
    def finished(self) -> bool:
        """Every slot handed out (or the round stopped) and no user still sending."""
        return self.pacer.exhausted and self.active_users == 0

    @property
    def dropped(self) -> int:
        """Slots of this process's share without a first attempt's row."""
        return self.pacer.share - self.first_attempts

    def record(self, row: dict[str, Any]) -> None:
        if self.closed:
            return  # answered after its trial ended: counted as dropped, never a stray row
        self.recorded += 1
        if row["attempt"] == 1:
            self.first_attempts += 1
        if row["outcome"] not in ACCEPTED_OUTCOMES:
            self.errors += 1
        if self.setup.recorder is not None:
            self.setup.recorder.add(self.setup.worker, row)


class TrialContext:
    """What the users of one load-generator process share, across the trials of a run.

    Users live as long as the process's runner: each waits for a round (:meth:`arm`), sends
    its share of the round's slots, and waits for the next one, so no user is spawned between
    trials. :meth:`prepare` sets the next trial before users spawn (they read its timeout).
    """

    def __init__(self) -> None:
        self.setup: TrialSetup | None = None
        self.round: TrialRound | None = None
        self.armed = Event()

    @property
    def scenario(self) -> Scenario:
        return self.setup.scenario if self.setup is not None else _PENDING

    def prepare(self, setup: TrialSetup) -> None:
        self.setup = setup

    def arm(self, zero_ms: float, *, index: int, count: int, seed: int) -> TrialRound:
        """Fix the trial's time zero and release the waiting users."""
        assert self.setup is not None, "prepare() comes before arm()"
        scenario = self.setup.scenario
        zero_monotonic = time.monotonic() + (zero_ms - time.time() * 1000.0) / 1000.0
        self.round = TrialRound(
            setup=self.setup,
            pacer=Pacer(Schedule(scenario), zero_monotonic, index=index, count=count),
            # Each process draws its own poison choices, reproducibly from the run's seed.
            bodies=BodyFactory(scenario, zero_ms, seed * 1000 + index),
            zero_ms=zero_ms,
        )
        self.armed.set()
        return self.round

    def close(self) -> TrialRound | None:
        """End the current round: users still in flight finish without a row."""
        current, self.round = self.round, None
        self.armed.clear()
        if current is not None:
            current.pacer.stop()
            current.closed = True
            current.done.set()
        return current

    def count_request(
        self, request_type: str, name: str, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """events.request listener: Locust's own count of POST attempts, per round."""
        current = (context or {}).get("asyncbench_round")
        if request_type == "POST" and name == POST_NAME and isinstance(current, TrialRound):
            current.counted += 1


_PENDING = Scenario(name="pending", description="", stages=(Stage(1.0, 1.0),), warmup_s=0.0)


def make_user_class(context: TrialContext) -> type[FastHttpUser]:
    """A FastHttpUser class bound to ``context`` (one per process, serving every trial)."""

    class AsyncbenchUser(FastHttpUser):
        host = "http://127.0.0.1"  # every request uses the context's absolute URL
        wait_time = constant(0)
        max_retries = 0  # a retry would hide a failed attempt; client retries are explicit rows
        concurrency = 1  # one request at a time per user: the pacer provides the concurrency

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Read at spawn time: the context is prepared for its first trial after the class
            # is built (the timeout is the same for every trial of a run).
            self.network_timeout = context.scenario.request_timeout_s
            self.connection_timeout = context.scenario.request_timeout_s
            self.connected_to: set[str] = set()
            super().__init__(*args, **kwargs)

        @task
        def follow_schedule(self) -> None:
            while True:
                if context.setup is not None:
                    self._connect(context.setup.base_url)
                context.armed.wait()
                current = context.round
                if current is None:
                    continue
                current.active_users += 1
                try:
                    self._serve(current)
                finally:
                    current.active_users -= 1
                current.done.wait()

        def _connect(self, base_url: str) -> None:
            """Open this user's connection to the trial's host before time zero.

            Otherwise each user's first request of a run also pays the TCP (and on AWS the
            TLS) handshake: with short trials and many users that lands past the warm-up and
            inflates the first trial's latencies. Only a socket is opened, nothing is sent.
            """
            if base_url in self.connected_to:
                return
            self.connected_to.add(base_url)
            try:
                client = self.client.client.clientpool.get_client(base_url)
                pool = client._connection_pool
                pool.return_socket(pool.get_socket())
            except (OSError, gevent.Timeout, AttributeError):
                pass  # unreachable now (the first request will say so) or another client

        def _serve(self, current: TrialRound) -> None:
            pacer = current.pacer
            while (slot := pacer.take()) is not None:
                wait_s = pacer.wait_s(slot)
                if wait_s > 0:
                    gevent.sleep(wait_s)
                if pacer.stopped:
                    break  # an interrupted trial: the slot is abandoned, never sent
                body, _poison = current.bodies.build()
                self._send(current, slot, body)

        def _send(self, current: TrialRound, slot: Slot, body: bytes) -> None:
            setup = current.setup
            retry = setup.scenario.client_retry
            pacer = current.pacer
            intended_ms = current.zero_ms + slot.offset_s * 1000.0
            intended_monotonic = pacer.due_monotonic(slot)
            for attempt in range(1, retry.max_attempts + 1):
                row = self._post(current, slot, body, attempt, intended_ms, intended_monotonic)
                if attempt == 1:
                    pacer.mark_sent(slot, row.pop("_sent_monotonic"))
                else:
                    row.pop("_sent_monotonic")
                current.record(row)
                retryable = setup.variant == "direct" and row["outcome"] in (
                    "server_error",
                    "throttled",
                )
                if not retryable or attempt == retry.max_attempts or pacer.stopped:
                    return
                gevent.sleep(retry.backoff_ms * 2 ** (attempt - 1) / 1000.0)

        def _post(
            self,
            current: TrialRound,
            slot: Slot,
            body: bytes,
            attempt: int,
            intended_ms: float,
            intended_monotonic: float,
        ) -> dict[str, Any]:
            setup = current.setup
            headers = {"Content-Type": "application/json", "X-Run-Id": setup.run_id}
            sent_ms = time.time() * 1000.0
            sent_monotonic = time.monotonic()
            response = self.client.post(
                f"{setup.base_url}/requests",
                data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes as they are
                headers=headers,
                name=POST_NAME,
                context={"asyncbench_round": current},
            )
            done_monotonic = time.monotonic()
            status_code = int(response.status_code or 0)
            error = getattr(response, "error", None) if status_code == 0 else None
            payload = _json(response) if status_code else {}
            outcome = outcome_for(status_code, error)
            row: dict[str, Any] = {
                "run_id": setup.run_id,
                "trial": setup.trial,
                "variant": setup.variant,
                "scenario": setup.scenario.name,
                "worker": setup.worker,
                "attempt": attempt,
                # A retry keeps the first attempt's intended time: its latency from intended
                # time is what the client waited in total.
                "intended_at_ms": intended_ms,
                "sent_at_ms": sent_ms,
                "latency_ms": (done_monotonic - sent_monotonic) * 1000.0,
                "latency_from_intended_ms": (done_monotonic - intended_monotonic) * 1000.0,
                "status_code": status_code,
                "outcome": outcome,
                "request_id": payload.get("requestId"),
                "warmup": slot.offset_s < setup.scenario.warmup_s,
                "target_rate_per_s": slot.rate_per_s,
                "stage": slot.stage,
                "time_to_result_ms": None,
                "result_status": None,
                "error": _error_text(error, status_code, payload),
                "_sent_monotonic": sent_monotonic,
            }
            if outcome == "succeeded":
                row["result_status"] = payload.get("status")
                row["time_to_result_ms"] = row["latency_ms"]
            elif outcome == "accepted" and setup.scenario.poll_results and row["request_id"]:
                self._poll(setup, row, sent_monotonic)
            return row

        def _poll(self, setup: TrialSetup, row: dict[str, Any], sent_monotonic: float) -> None:
            """Poll GET /requests/{id} until terminal or the collection timeout."""
            deadline = sent_monotonic + setup.scenario.collection_timeout_s
            interval = 0.05
            url = f"{setup.base_url}/requests/{row['request_id']}"
            while time.monotonic() < deadline:
                response = self.client.get(url, name=POLL_NAME)
                status = _json(response).get("status") if response.status_code == 200 else None
                if status in TERMINAL_STATUSES:
                    row["result_status"] = status
                    row["time_to_result_ms"] = (time.monotonic() - sent_monotonic) * 1000.0
                    return
                gevent.sleep(interval)
                interval = min(interval * 2, 1.0)

    return AsyncbenchUser


def _json(response: Any) -> dict[str, Any]:
    try:
        data = json.loads(response.content or b"{}")
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _error_text(error: BaseException | None, status_code: int, payload: dict[str, Any]) -> Any:
    if error is not None:
        return f"{type(error).__name__}: {error}"[:500]
    if status_code >= 400:
        message = payload.get("error") or payload.get("message")
        return str(message)[:500] if message else None
    return None
