"""Waiting for the server side of a trial to settle: poll with a deadline, never sleep blindly.

A storage-first trial ends on the client long before its stream is drained; collection must
wait until every accepted request is terminal or parked, but never forever: what is still
outstanding at the deadline is recorded as unfinished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["wait_until_settled"]


def wait_until_settled(
    outstanding: Callable[[], int],
    *,
    timeout_s: float,
    abort: threading.Event | None = None,
    on_poll: Callable[[int, float], None] | None = None,
    interval_s: float = 0.25,
    max_interval_s: float = 2.0,
) -> bool:
    """Call ``outstanding()`` until it returns 0 (True), the deadline passes or abort is set.

    ``on_poll(outstanding, elapsed_s)`` reports progress after each poll. The pause between
    polls grows from ``interval_s`` to ``max_interval_s`` so a long drain does not hammer the
    table with scans; the pause is an ``Event.wait`` so an abort ends it at once.
    """
    abort = abort or threading.Event()
    started = time.monotonic()
    deadline = started + timeout_s
    pause = interval_s
    while True:
        remaining = outstanding()
        elapsed = time.monotonic() - started
        if on_poll is not None:
            on_poll(remaining, elapsed)
        if remaining == 0:
            return True
        left = deadline - time.monotonic()
        if left <= 0 or abort.is_set():
            return False
        if abort.wait(min(pause, left)):
            return False
        pause = min(pause * 1.5, max_interval_s)
