"""The local stage's metrics log: what CloudWatch would have seen, as JSON lines.

One object per observation with the keys ``ts_ms`` (epoch ms), ``variant``, ``function``,
``metric``, ``value``, ``unit`` and optional extras (``request_id``...). Metric names follow
CloudWatch where one exists (Invocations, Duration, InitDuration, Errors, Throttles,
ConcurrentExecutions, IteratorAge...). The run collector reads the file while the stage writes
it, so every line is written whole and flushed at once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog"]


class MetricsLog:
    """Append-only, thread-safe JSON-lines writer (one line per :meth:`emit`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Line-buffered: a reader never sees half a line, and nothing waits in a buffer.
        self._handle: Any = self.path.open("a", encoding="utf-8", buffering=1)

    def emit(
        self,
        variant: str,
        function: str,
        metric: str,
        value: float,
        unit: str = "Count",
        **extra: Any,
    ) -> None:
        """Write one observation; silently ignored once the log is closed (stage teardown)."""
        record = {
            "ts_ms": int(time.time() * 1000),
            "variant": variant,
            "function": function,
            "metric": metric,
            "value": value,
            "unit": unit,
            **extra,
        }
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._handle is not None:
                self._handle.write(line)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
