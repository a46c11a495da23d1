"""Command-line entry points (placeholder until implemented)."""

from __future__ import annotations

import argparse

from asyncbench.errors import AsyncbenchError


def _not_built(args: argparse.Namespace) -> int:
    raise AsyncbenchError(f"`asyncbench {args.command}` is not built yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("scenarios", help="(not built yet)").set_defaults(handler=_not_built)
    subparsers.add_parser("run", help="(not built yet)").set_defaults(handler=_not_built)
    subparsers.add_parser("worker", help="(not built yet)").set_defaults(handler=_not_built)
