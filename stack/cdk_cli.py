"""Running the pinned CDK CLI (``node_modules/.bin/cdk`` from package-lock.json) for deploy/destroy.

Telemetry, notices and the version check are switched off: the suite talks to AWS only to deploy
and to no one else. The CLI runs this project's app (``python -m stack.app``) with the user's
config passed as JSON in ``ASYNCBENCH_CONFIG_JSON``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from asyncbench.errors import AsyncbenchError, DependencyMissingError
from asyncbench.paths import PROJECT_ROOT, node_modules_dir
from stack.config import StackConfig
from stack.toolchain import node_path_entries

__all__ = ["CONFIG_ENV_VAR", "CdkRunner", "cdk_command", "cdk_environment", "run_cdk"]

# How the CLI hands the user's StackConfig (as JSON) to the app it runs (stack.app).
CONFIG_ENV_VAR = "ASYNCBENCH_CONFIG_JSON"

CdkRunner = Callable[..., subprocess.CompletedProcess[bytes]]

# Flags every invocation gets: no notices fetched from the internet, no telemetry.
COMMON_FLAGS = ("--no-notices", "--no-version-reporting")

_INSTALL_HINT = "run `npm ci` in the project folder (or `make bootstrap`) to install the CDK CLI"


def cdk_command() -> list[str]:
    """The pinned CDK CLI, falling back to ``npx --no-install cdk`` (never a download)."""
    if shutil.which("node") is None:
        raise DependencyMissingError(f"Node.js is not installed; install it, then {_INSTALL_HINT}")
    local = node_modules_dir() / ".bin" / "cdk"
    if local.exists():
        return [str(local)]
    if shutil.which("npx") is not None:
        return ["npx", "--no-install", "cdk"]
    raise DependencyMissingError(f"the CDK CLI is not installed; {_INSTALL_HINT}")


def cdk_environment(
    config: StackConfig,
    *,
    region: str | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The CLI's environment: the caller's, plus config, region and the off switches."""
    env = dict(os.environ if base is None else base)
    env[CONFIG_ENV_VAR] = json.dumps(config.to_dict())
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    # The CLI's `#!/usr/bin/env node` and the app's jsii find the supported Node first.
    entries = node_path_entries()
    if entries:
        env["PATH"] = os.pathsep.join([*entries, env.get("PATH", "")])
        env.setdefault("JSII_NODE", str(Path(entries[0]) / "node"))
    if region:
        env["AWS_REGION"] = region
        env["AWS_DEFAULT_REGION"] = region
    return env


def run_cdk(
    arguments: Sequence[str],
    *,
    config: StackConfig,
    region: str | None,
    profile: str | None,
    outdir: Path,
    runner: CdkRunner = subprocess.run,
) -> None:
    """Run ``cdk <arguments>`` on this project's app; a failure raises one clear line."""
    command = [
        *cdk_command(),
        *arguments,
        # The CLI runs the app through a shell: quote the interpreter's path.
        "--app",
        f"{shlex.quote(sys.executable)} -m stack.app",
        # Absolute: the CLI runs in the project folder, the user's --out is relative to theirs.
        "--output",
        str(outdir.resolve()),
        *COMMON_FLAGS,
    ]
    if profile:
        command += ["--profile", profile]
    result = runner(command, cwd=PROJECT_ROOT, env=cdk_environment(config, region=region))
    if result.returncode != 0:
        raise AsyncbenchError(
            f"`cdk {arguments[0]}` failed with exit code {result.returncode} (its output is above)"
        )
