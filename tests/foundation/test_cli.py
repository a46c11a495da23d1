"""The console script: --help lists every command of the contract; errors are one line."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from asyncbench import cli
from asyncbench.errors import ConfigError

CONTRACT_COMMANDS = (
    "synth", "deploy", "destroy", "local", "scenarios", "run", "worker", "report", "demo",
    "verify",
)  # fmt: skip


def test_help_lists_the_contract_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # Each command as an entry of the command list (its own line, its name first), not merely
    # a word somewhere in the text ("run" is in "runs", "local" in the description).
    listed = {
        line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()
    }
    for command in CONTRACT_COMMANDS:
        assert command in listed, f"{command} is not listed by --help"
    subcommands = next(
        action for action in cli.build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )  # fmt: skip
    assert set(CONTRACT_COMMANDS) <= set(subcommands.choices)


def test_each_module_registers_the_commands_the_map_names() -> None:
    for module_name, names in cli.COMMAND_MODULES.items():
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module_name).register(subparsers)
        assert tuple(subparsers.choices) == names, module_name


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name for action in parser._actions
        if isinstance(action, argparse._SubParsersAction) for name in action.choices
    }  # fmt: skip


def test_a_named_command_gets_only_its_modules_parser() -> None:
    assert _commands(cli.build_parser("run")) == {"scenarios", "run", "worker"}
    # An unknown word gets the whole tree, so argparse's "invalid choice" lists every command.
    assert _commands(cli.build_parser("repor")) >= set(CONTRACT_COMMANDS)


def test_report_does_not_import_the_other_commands() -> None:
    code = (
        "import sys; from asyncbench import cli; cli.build_parser('report'); "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('stack', 'loadtests', 'boto3')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_expected_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = cli.build_parser()

    def failing(_args: object) -> int:
        raise ConfigError("config key 'batch_size' must be between 1 and 10000, got 0")

    args = parser.parse_args(["synth"])
    monkeypatch.setattr(cli, "build_parser", lambda *_: _FixedParser(parser, args, failing))
    assert cli.main(["synth"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("asyncbench: error: config key 'batch_size'")


class _FixedParser:
    def __init__(self, parser: object, args: object, handler: object) -> None:
        self._args = args
        self._args.handler = handler  # type: ignore[attr-defined]

    def parse_args(self, _argv: object) -> object:
        return self._args

    def print_help(self) -> None:  # pragma: no cover - not reached
        pass
