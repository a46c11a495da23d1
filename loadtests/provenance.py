"""Provenance of a run: suite version and git revision, machine, library versions, clock.

Everything a reader needs to judge where a number came from is recorded with the run
(DESIGN.md section 4), so two runs can be compared knowing what differed between them.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psutil

from asyncbench import __version__
from asyncbench.paths import PROJECT_ROOT

__all__ = ["LIBRARIES", "git_revision", "library_versions", "machine", "suite", "timestamp"]

LIBRARIES = ("locust", "pandas", "boto3", "pyarrow", "aws-cdk-lib", "numpy", "scipy")


def git_revision() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (None outside git)."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}
    return {"revision": revision, "dirty": bool(status.strip())}


def suite() -> dict[str, Any]:
    return {"name": "asyncbench", "version": __version__, **git_revision()}


def machine() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def timestamp(epoch_ms: float | None = None) -> dict[str, Any]:
    """``{"iso": "...Z", "ms": ...}`` for a moment (now by default)."""
    epoch_ms = time.time() * 1000.0 if epoch_ms is None else epoch_ms
    iso = datetime.fromtimestamp(epoch_ms / 1000.0, UTC).isoformat(timespec="milliseconds")
    return {"iso": iso.replace("+00:00", "Z"), "ms": epoch_ms}
