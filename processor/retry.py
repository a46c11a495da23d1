"""The stream handler's retry policy as pure functions: back-off and when to give up.

Retries must ride out a downstream outage of a minute or more without burning the attempts in
a tight loop, and must never block a shard for ever: the item is made terminal (FAILED) before
the event source mapping itself gives up on the record (MaximumRetryAttempts or
MaximumRecordAgeInSeconds), because a record the mapping discards leaves its item PENDING.
"""

from __future__ import annotations

__all__ = ["DELIVERY_SLACK_MS", "SAFETY_MARGIN_MS", "backoff_ms", "give_up_reason"]

SAFETY_MARGIN_MS = 1000
"""Time left in the invocation after a back-off, to return the batch response before timeout."""

DELIVERY_SLACK_MS = 5000
"""Upper estimate of the gap between the end of an invocation and the mapping's next delivery
(polling four times a second, invoking, processing the records before this one)."""


def backoff_ms(attempts: int, *, base_ms: int, max_ms: int, remaining_ms: int | None = None) -> int:
    """The back-off after the ``attempts``-th failed attempt (1 = first).

    ``base_ms`` doubling per attempt, capped at ``max_ms``, and never past the invocation's
    remaining time minus :data:`SAFETY_MARGIN_MS`.
    """
    delay = min(max_ms, base_ms * 2 ** min(max(attempts - 1, 0), 40))
    if remaining_ms is not None:
        delay = min(delay, remaining_ms - SAFETY_MARGIN_MS)
    return max(0, delay)


def give_up_reason(
    attempts: int,
    *,
    max_attempts: int,
    age_ms: float,
    max_record_age_s: int,
    next_backoff_ms: int,
) -> str | None:
    """Why a transiently failing record must be made FAILED now, or None to retry it.

    ``attempts`` counts this attempt. The age test looks one delivery ahead: when the next
    delivery (after the back-off and the delivery slack) would come at or past the mapping's
    maximum record age, the mapping would discard the record, so fail it now.
    """
    if attempts >= max_attempts:
        return f"gave up after {attempts} attempts"
    if age_ms + next_backoff_ms + DELIVERY_SLACK_MS >= max_record_age_s * 1000:
        return (
            f"gave up after {attempts} attempts: record {age_ms / 1000:.0f} s old, "
            f"near the maximum record age of {max_record_age_s} s"
        )
    return None
