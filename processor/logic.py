"""The business-logic simulation both handlers run, driven by the request body.

The body is the contract's JSON object::

    {"work_ms": 20, "work_kind": "io", "fail": "never", "outages": [[START_MS, END_MS]],
     "payload": "any text"}

``work_kind`` says what the ``work_ms`` of work is: ``"io"`` (the default) sleeps, as waiting on
a downstream call does, so a handler that runs records at once overlaps it; ``"cpu"`` busy-loops
for the same time, so concurrency inside one invocation gains nothing it would not on a
CPU-bound function (the GIL and the function's vCPU share bound it).

Every key is optional. Unknown keys are allowed and ignored, so a load generator can tag its
bodies (a sequence number, a trial) without breaking the processor; a known key with a wrong
type or value is a :class:`PermanentFailure`, as is a body that is not a JSON object.

Outcomes: return normally (success), raise :class:`PermanentFailure` (invalid body or a poison
request: never retried) or :class:`TransientFailure` (the processor's clock is inside an outage
window, ``start_ms <= now < end_ms``: retried by storage-first, a 502 for direct). The clock
and the sleep are passed in, so tests neither wait nor depend on the time of day.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_WORK_MS",
    "PermanentFailure",
    "ProcessingFailure",
    "Request",
    "TransientFailure",
    "busy_wait",
    "parse_request",
    "process",
]

MAX_WORK_MS = 60_000
"""Cap of ``work_ms``: one minute of simulated work fits the longest sane function timeout."""

_FAIL_MODES = ("never", "always")
_WORK_KINDS = ("io", "cpu")


class ProcessingFailure(Exception):
    """Raised when processing a request fails; the message is what the item's ``error`` holds."""


class PermanentFailure(ProcessingFailure):
    """Raised when a request can never succeed (invalid body, poison request): do not retry."""


class TransientFailure(ProcessingFailure):
    """Raised when processing failed for now (a downstream outage): retrying may succeed."""


@dataclass(frozen=True)
class Request:
    """A validated request body. Times are epoch milliseconds."""

    work_ms: int = 0
    work_kind: str = "io"
    fail: str = "never"
    outages: tuple[tuple[float, float], ...] = ()
    payload: str = ""

    def outage_at(self, now_ms: float) -> tuple[float, float] | None:
        """The outage window that contains ``now_ms``, if any."""
        for start_ms, end_ms in self.outages:
            if start_ms <= now_ms < end_ms:
                return (start_ms, end_ms)
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_outages(value: Any) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list):
        raise PermanentFailure("invalid body: 'outages' must be a list of [start_ms, end_ms]")
    windows = []
    for index, window in enumerate(value):
        if not (isinstance(window, list) and len(window) == 2 and all(map(_is_number, window))) or (
            window[0] > window[1]
        ):
            raise PermanentFailure(
                f"invalid body: outages[{index}] must be [start_ms, end_ms] with "
                f"start_ms <= end_ms, got {json.dumps(window)[:100]}"
            )
        windows.append((window[0], window[1]))
    return tuple(windows)


def parse_request(body: str | None) -> Request:
    """Validate a request body; raises :class:`PermanentFailure` saying what is wrong."""
    if body is None or body == "":
        raise PermanentFailure("invalid body: empty, expected a JSON object")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as error:
        raise PermanentFailure(f"invalid body: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise PermanentFailure(f"invalid body: expected a JSON object, got {type(data).__name__}")

    work_ms = data.get("work_ms", 0)
    if not (isinstance(work_ms, int) and not isinstance(work_ms, bool)) or not (
        0 <= work_ms <= MAX_WORK_MS
    ):
        raise PermanentFailure(
            f"invalid body: 'work_ms' must be an integer from 0 to {MAX_WORK_MS}, "
            f"got {json.dumps(work_ms)[:100]}"
        )
    work_kind = data.get("work_kind", "io")
    if work_kind not in _WORK_KINDS:
        raise PermanentFailure(
            f'invalid body: \'work_kind\' must be "io" or "cpu", got {json.dumps(work_kind)[:100]}'
        )
    fail = data.get("fail", "never")
    if fail not in _FAIL_MODES:
        raise PermanentFailure(
            f'invalid body: \'fail\' must be "never" or "always", got {json.dumps(fail)[:100]}'
        )
    payload = data.get("payload", "")
    if not isinstance(payload, str):
        raise PermanentFailure(
            f"invalid body: 'payload' must be a string, got {type(payload).__name__}"
        )
    return Request(
        work_ms=work_ms,
        work_kind=work_kind,
        fail=fail,
        outages=_parse_outages(data.get("outages", [])),
        payload=payload,
    )


def busy_wait(seconds: float) -> None:
    """Keep the CPU busy for ``seconds`` (CPU-bound work of that duration)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def process(
    body: str | None,
    *,
    now_ms: Callable[[], float],
    sleep: Callable[[float], None],
    spin: Callable[[float], None] = busy_wait,
) -> Request:
    """Run the simulation on one request body and return the parsed request on success.

    Order matters and is the same for both variants: an invalid or poison body fails
    permanently even during an outage (retrying it could never help); an outage is detected
    before the work is done, as a failing downstream call would be.
    """
    request = parse_request(body)
    if request.fail == "always":
        raise PermanentFailure("poison request")
    window = request.outage_at(now_ms())
    if window is not None:
        raise TransientFailure(
            f"downstream outage (window {window[0]:.0f}-{window[1]:.0f} epoch ms)"
        )
    if request.work_ms:
        (spin if request.work_kind == "cpu" else sleep)(request.work_ms / 1000)
    return request
