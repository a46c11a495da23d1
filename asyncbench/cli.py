"""The `asyncbench` console script: one argparse tree, commands registered by their packages.

Each package that owns commands exposes ``register(subparsers)``, which adds its sub-parsers
and sets ``handler`` (a function ``(argparse.Namespace) -> int``) as their default. This module
only assembles them and turns an :class:`~asyncbench.errors.AsyncbenchError` into one line on
stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from asyncbench import __version__
from asyncbench.errors import AsyncbenchError

__all__ = ["build_parser", "main"]

# Modules that register commands, in the order they appear in --help.
COMMAND_MODULES = (
    "stack.cli",  # synth, deploy, destroy
    "stack.local.cli",  # local up / status / down
    "loadtests.cli",  # scenarios, run, worker
    "loadtests.tune",  # tune
    "loadtests.redrive",  # redrive
    "analysis.cli",  # report
    "asyncbench.demo",  # demo
    "stack.verify.cli",  # verify
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncbench",
        description=(
            "Benchmark a direct Lambda API against a storage-first API (API Gateway -> DynamoDB "
            "-> Streams -> Lambda): response latency, stream lag, failure recovery, capacity and "
            "cost. Runs against AWS or against the local stage (the default, no account needed)."
        ),
        epilog="Start with `asyncbench demo --quick`; see README.md for the AWS path.",
    )
    parser.add_argument("--version", action="version", version=f"asyncbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(handler(args) or 0)
    except AsyncbenchError as error:
        print(f"asyncbench: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("asyncbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
