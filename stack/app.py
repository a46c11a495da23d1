"""The CDK app: both variants' stacks from one StackConfig, checked by cdk-nag.

Run in-process by ``asyncbench synth`` (:func:`synthesize`) and as a program by the CDK CLI
(``python -m stack.app``, see ``cdk.json``), which passes the config as JSON in the environment
variable :data:`CONFIG_ENV_VAR` so that ``deploy`` deploys exactly what the user configured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from asyncbench.errors import ConfigError
from stack.cdk_cli import CONFIG_ENV_VAR
from stack.config import StackConfig, from_mapping
from stack.outputs import stack_names
from stack.stacks import DirectStack, StorageFirstStack

__all__ = ["CONFIG_ENV_VAR", "Synthesized", "build_app", "config_from_environment", "synthesize"]


@dataclass(frozen=True)
class Synthesized:
    """A synthesized cloud assembly: the app, its stacks and where the templates are."""

    app: cdk.App
    direct: DirectStack
    storage_first: StorageFirstStack
    outdir: Path

    @property
    def stacks(self) -> dict[str, cdk.Stack]:
        return {"direct": self.direct, "storage_first": self.storage_first}

    def template_paths(self) -> dict[str, Path]:
        return {
            variant: self.outdir / stack.template_file for variant, stack in self.stacks.items()
        }


def build_app(config: StackConfig, outdir: str | Path | None = None) -> Synthesized:
    """The app with both stacks (not yet synthesized). ``outdir`` None: the CLI's or a temp dir."""
    app = cdk.App(
        outdir=str(outdir) if outdir is not None else None,
        # No AWS::CDK::Metadata resource: the suite reports nothing about its users.
        analytics_reporting=False,
    )
    names = stack_names(config)
    direct = DirectStack(
        app, names["direct"], config=config, description="asyncbench: direct variant"
    )
    storage_first = StorageFirstStack(
        app,
        names["storage_first"],
        config=config,
        description="asyncbench: storage-first variant",
    )
    # The storage-first API logs through the account-level role the direct stack creates.
    storage_first.add_stack_dependency(direct, "API Gateway's account-level CloudWatch role")
    cdk.Tags.of(app).add("project", "asyncbench")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return Synthesized(app, direct, storage_first, Path(app.outdir))


def synthesize(config: StackConfig, outdir: str | Path | None = None) -> Synthesized:
    """Build and synthesize both stacks into ``outdir`` (no network, no CDK CLI)."""
    built = build_app(config, outdir)
    built.app.synth()
    return built


def config_from_environment() -> StackConfig:
    """The config the CLI passed in :data:`CONFIG_ENV_VAR`, or the defaults."""
    raw = os.environ.get(CONFIG_ENV_VAR)
    if not raw:
        return StackConfig()
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{CONFIG_ENV_VAR} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{CONFIG_ENV_VAR} must hold a JSON object")
    return from_mapping(values, source=CONFIG_ENV_VAR)


if __name__ == "__main__":
    synthesize(config_from_environment())
