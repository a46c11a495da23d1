"""Helpers for the end-to-end tests: run the real `asyncbench` commands as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["asyncbench", "last_line", "read_summary"]


def asyncbench(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m asyncbench ARGS` to completion and return what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "asyncbench", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
        check=False,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1].strip()


def read_summary(index_html: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(index_html).parent / "summary.json").read_text())
    return data
