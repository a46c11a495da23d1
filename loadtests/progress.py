"""Progress display of ``asyncbench run``: one updating line on a terminal, plain lines otherwise.

A plain log (CI, a pipe, the demo's child command) gets a line at most every few seconds, so
a long run does not flood it; a terminal gets one line rewritten in place.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """Writes trial progress to ``stream`` (stderr by default, so stdout ends with the folder)."""

    def __init__(
        self, stream: TextIO | None = None, *, tty: bool | None = None, every_s: float = 5.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = every_s
        self._last_plain: float | None = None
        self._line_open = False
        self.prefix = ""

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that stays (trial started, collection result, warnings)."""
        self._write_line(text)

    def begin_trial(self, trial: int, total: int, variant: str, repetition: int) -> None:
        self.prefix = f"trial {trial}/{total} {variant} (repetition {repetition})"
        self._last_plain = None
        self._write_line(f"{self.prefix}: load starts")

    def load(self, progress: Any) -> None:
        """A :class:`loadtests.driver.TrialProgress` snapshot."""
        text = (
            f"{self.prefix}: {progress.elapsed_s:6.1f} s, "
            f"offered {progress.offered_rate_per_s:7.1f}/s, "
            f"achieved {progress.achieved_rate_per_s:7.1f}/s, "
            f"sent {progress.sent}, errors {progress.errors}"
        )
        self._update(text)

    def collecting(self, outstanding: int, elapsed_s: float) -> None:
        self._update(
            f"{self.prefix}: collecting, {outstanding} outstanding after {elapsed_s:.1f} s"
        )

    def _update(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
            self._line_open = True
            return
        now = time.monotonic()
        if self._last_plain is None or now - self._last_plain >= self.every_s:
            self._last_plain = now
            self._write_line(text)

    def close(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False
