"""The request body a scenario asks for (the contract's business-logic simulation)."""

from __future__ import annotations

import json
import random

from loadtests.scenario import Scenario

__all__ = ["BodyFactory", "outage_window_ms"]

# Printable filler with a quote, a backslash and non-ASCII, so every run also exercises the
# byte-for-byte round trip of awkward bodies through the mapping templates.
_FILLER = "asyncbench payload 'quoted' \\ back-slash é ü 漢 "


def outage_window_ms(scenario: Scenario, zero_ms: float) -> tuple[int, int] | None:
    """The scenario's outage as an absolute [start, end) window in epoch ms, or None."""
    if scenario.outage is None:
        return None
    start = round(zero_ms + scenario.outage.start_s * 1000.0)
    return start, round(start + scenario.outage.duration_s * 1000.0)


class BodyFactory:
    """Builds bodies for one load-generator process; the poison choice follows the seed."""

    def __init__(self, scenario: Scenario, zero_ms: float, seed: int) -> None:
        self._scenario = scenario
        self._random = random.Random(seed)
        window = outage_window_ms(scenario, zero_ms)
        self._outages = [list(window)] if window else []
        self._payload = _payload(scenario.payload_bytes)

    def build(self) -> tuple[bytes, bool]:
        """One body as UTF-8 bytes and whether it is a poison request."""
        poison = self._random.random() < self._scenario.poison_share
        body = {
            "work_ms": self._scenario.work_ms,
            "work_kind": self._scenario.work_kind,
            "fail": "always" if poison else "never",
            "outages": self._outages,
            "payload": self._payload,
        }
        return json.dumps(body, ensure_ascii=False).encode("utf-8"), poison


def _payload(size_bytes: int) -> str:
    """Text of exactly ``size_bytes`` UTF-8 bytes (filler, padded with ASCII)."""
    text = ""
    while len((text + _FILLER).encode("utf-8")) <= size_bytes:
        text += _FILLER
    return text + "x" * (size_bytes - len(text.encode("utf-8")))
