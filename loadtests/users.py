"""Locust users that send a trial's requests on the pacer's schedule and record each attempt.

Importing this module imports Locust, which monkey-patches the process for gevent: only the
load-generator processes started by ``loadtests.driver`` import it. One :class:`TrialContext`
per process holds what its users share (pacer, body factory, recorder, counters); users are
built for it by :func:`make_user_class`, so nothing lives in module-level mutable state.
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
from locust.exception import StopUser

from loadtests.body import BodyFactory
from loadtests.pacing import Pacer, Schedule, Slot
from loadtests.recorder import Recorder
from loadtests.scenario import Scenario, Stage

__all__ = [
    "POLL_NAME",
    "POST_NAME",
    "TrialContext",
    "make_user_class",
    "outcome_for",
]

POST_NAME = "POST /requests"
POLL_NAME = "GET /requests/{id}"
TERMINAL = ("SUCCEEDED", "FAILED")


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


@dataclass
class TrialContext:
    """What the users of one load-generator process share during a trial."""

    run_id: str
    trial: int
    variant: str
    base_url: str
    scenario: Scenario
    worker: str
    recorder: Recorder | None
    """None when recording is off (the overhead benchmark's baseline)."""
    armed: Event = field(default_factory=Event)
    pacer: Pacer | None = None
    bodies: BodyFactory | None = None
    zero_ms: float = 0.0
    counted: int = 0
    """POST attempts Locust reported through events.request."""
    recorded: int = 0
    errors: int = 0
    finished_users: int = 0

    @classmethod
    def pending(cls) -> TrialContext:
        """A context for a worker that has not received its trial yet (see :meth:`configure`)."""
        scenario = Scenario(name="pending", description="", stages=(Stage(1.0, 1.0),), warmup_s=0.0)
        return cls(run_id="", trial=0, variant="", base_url="", scenario=scenario, worker="",
                   recorder=None)  # fmt: skip

    def configure(self, **fields: Any) -> None:
        """Fill in a pending context once the master sent the trial (before users spawn)."""
        for name, value in fields.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        self.base_url = self.base_url.rstrip("/")

    def arm(self, zero_ms: float, *, index: int, count: int, seed: int) -> None:
        """Fix the trial's time zero and release the waiting users."""
        self.zero_ms = zero_ms
        zero_monotonic = time.monotonic() + (zero_ms - time.time() * 1000.0) / 1000.0
        self.pacer = Pacer(Schedule(self.scenario), zero_monotonic, index=index, count=count)
        # Each process draws its own poison choices, reproducibly from the run's seed.
        self.bodies = BodyFactory(self.scenario, zero_ms, seed * 1000 + index)
        self.armed.set()

    def count_request(self, request_type: str, name: str, **_: Any) -> None:
        """events.request listener: Locust's own count of POST attempts in this process."""
        if request_type == "POST" and name == POST_NAME:
            self.counted += 1

    def record(self, row: dict[str, Any]) -> None:
        self.recorded += 1
        if row["outcome"] not in ("accepted", "succeeded"):
            self.errors += 1
        if self.recorder is not None:
            self.recorder.add(self.worker, row)


def make_user_class(context: TrialContext) -> type[FastHttpUser]:
    """A FastHttpUser class bound to ``context`` (one per process and trial)."""

    class AsyncbenchUser(FastHttpUser):
        host = "http://127.0.0.1"  # every request uses the context's absolute URL
        wait_time = constant(0)
        max_retries = 0  # a retry would hide a failed attempt; client retries are explicit rows
        concurrency = 1  # one request at a time per user: the pacer provides the concurrency

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Read at spawn time: a worker's context is configured after the class is built.
            self.network_timeout = context.scenario.request_timeout_s
            self.connection_timeout = context.scenario.request_timeout_s
            super().__init__(*args, **kwargs)

        @task
        def follow_schedule(self) -> None:
            context.armed.wait()
            pacer = context.pacer
            assert pacer is not None and context.bodies is not None
            while (slot := pacer.take()) is not None:
                wait_s = pacer.wait_s(slot)
                if wait_s > 0:
                    gevent.sleep(wait_s)
                if pacer.stopped:
                    break  # an interrupted trial: the slot is abandoned, never sent
                body, _poison = context.bodies.build()
                self._send(pacer, slot, body)
            context.finished_users += 1
            raise StopUser()

        def _send(self, pacer: Pacer, slot: Slot, body: bytes) -> None:
            retry = context.scenario.client_retry
            intended_ms = context.zero_ms + slot.offset_s * 1000.0
            intended_monotonic = pacer.due_monotonic(slot)
            for attempt in range(1, retry.max_attempts + 1):
                row = self._post(slot, body, attempt, intended_ms, intended_monotonic)
                if attempt == 1:
                    pacer.mark_sent(slot, row.pop("_sent_monotonic"))
                else:
                    row.pop("_sent_monotonic")
                context.record(row)
                retryable = context.variant == "direct" and row["outcome"] in (
                    "server_error",
                    "throttled",
                )
                if not retryable or attempt == retry.max_attempts or pacer.stopped:
                    return
                gevent.sleep(retry.backoff_ms * 2 ** (attempt - 1) / 1000.0)

        def _post(
            self,
            slot: Slot,
            body: bytes,
            attempt: int,
            intended_ms: float,
            intended_monotonic: float,
        ) -> dict[str, Any]:
            headers = {"Content-Type": "application/json", "X-Run-Id": context.run_id}
            sent_ms = time.time() * 1000.0
            sent_monotonic = time.monotonic()
            response = self.client.post(
                f"{context.base_url}/requests",
                data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes as they are
                headers=headers,
                name=POST_NAME,
            )
            done_monotonic = time.monotonic()
            status_code = int(response.status_code or 0)
            error = getattr(response, "error", None) if status_code == 0 else None
            payload = _json(response) if status_code else {}
            outcome = outcome_for(status_code, error)
            row: dict[str, Any] = {
                "run_id": context.run_id,
                "trial": context.trial,
                "variant": context.variant,
                "scenario": context.scenario.name,
                "worker": context.worker,
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
                "warmup": slot.offset_s < context.scenario.warmup_s,
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
            elif outcome == "accepted" and context.scenario.poll_results and row["request_id"]:
                self._poll(row, sent_monotonic)
            return row

        def _poll(self, row: dict[str, Any], sent_monotonic: float) -> None:
            """Poll GET /requests/{id} until terminal or the collection timeout."""
            deadline = sent_monotonic + context.scenario.collection_timeout_s
            interval = 0.05
            url = f"{context.base_url}/requests/{row['request_id']}"
            while time.monotonic() < deadline:
                response = self.client.get(url, name=POLL_NAME)
                status = _json(response).get("status") if response.status_code == 200 else None
                if status in TERMINAL:
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
