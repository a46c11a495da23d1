"""The `asyncbench` console script: one argparse tree, commands registered by their packages.

Each package that owns commands exposes ``register(subparsers)``, which adds its sub-parsers
and sets ``handler`` (a function ``(argparse.Namespace) -> int``) as their default. This module
only assembles them and turns an :class:`~asyncbench.errors.AsyncbenchError` into one line on
stderr and a non-zero exit code. A command line that names a command imports only the module
that registers it (importing them all costs about half a second: pandas, boto3, ...); the bare
`asyncbench`, `--help` and an unknown command get the whole tree.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from asyncbench import __version__
from asyncbench.errors import AsyncbenchError

__all__ = ["build_parser", "main"]

# Modules that register commands, in the order they appear in --help, with the commands each
# registers (tests/foundation/test_cli.py checks the names against what the modules register).
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "stack.cli": ("synth", "deploy", "destroy"),
    "stack.local.cli": ("local",),  # local up / status / down
    "loadtests.cli": ("scenarios", "run", "worker"),
    "loadtests.tune": ("tune",),
    "loadtests.redrive": ("redrive",),
    "analysis.cli": ("report",),
    "asyncbench.demo": ("demo",),
    "stack.verify.cli": ("verify",),
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole tree; given a known `command`, only its module's commands (same sub-parsers)."""
    modules = [module for module, names in COMMAND_MODULES.items() if command in names]
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
    for module_name in modules or COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command word when the line starts with one (top-level options come before it)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_named(arguments))
    args = parser.parse_args(arguments)
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
