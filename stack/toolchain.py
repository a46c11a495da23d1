"""The Node.js the CDK toolchain runs on: the system's, or a supported one bootstrap installed.

jsii (the bridge under aws-cdk-lib) and the CDK CLI run on Node. Where the system's Node is at
its end of life (Node 20 on Debian/NodeSource images: April 2026), ``scripts/bootstrap.sh``
installs a supported one from the npm registry (the package ``node-linux-<arch>``, which ships
the official binary) into ``.tools/node``. :func:`prefer_supported_node` points jsii at it
(``JSII_NODE``) and :func:`node_path_entries` puts it first on the CLI's PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

from asyncbench.paths import PROJECT_ROOT

__all__ = ["MINIMUM_NODE_MAJOR", "node_path_entries", "prefer_supported_node", "tool_node"]

# The oldest Node major that is not end-of-life (Node 22: April 2027); bootstrap installs 24.
MINIMUM_NODE_MAJOR = 22


def tool_node() -> Path | None:
    """``.tools/node/node_modules/.bin/node`` when bootstrap installed it, else None."""
    root = Path(os.environ.get("ASYNCBENCH_TOOLS_DIR", PROJECT_ROOT / ".tools"))
    candidate = root / "node" / "node_modules" / ".bin" / "node"
    return candidate if candidate.exists() else None


def node_path_entries() -> list[str]:
    """Folders to put first on PATH so that ``node`` is the supported one (may be empty)."""
    node = tool_node()
    return [str(node.parent)] if node is not None else []


def prefer_supported_node() -> None:
    """Make jsii start the supported Node (unless the user chose one with JSII_NODE)."""
    node = tool_node()
    if node is not None:
        os.environ.setdefault("JSII_NODE", str(node))
