"""The synth/deploy/destroy commands: output contract, credential check, CDK CLI invocation."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from asyncbench.cli import main
from asyncbench.errors import ConfigError, DependencyMissingError
from stack import cdk_cli
from stack.app import config_from_environment
from stack.cdk_cli import CONFIG_ENV_VAR, run_cdk
from stack.cli import NO_CREDENTIALS_MESSAGE, OPEN_ENDPOINTS_WARNING
from stack.config import StackConfig
from stack.endpoints import read_endpoints
from stack.outputs import OUTPUT_KEYS, stack_names

from .aws_fakes import account_concurrency
from .test_outputs import REGION, create_stack, variant_outputs

AWS_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in AWS_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    # Never ask the instance metadata service (no network beyond 127.0.0.1 here).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, no_aws_credentials: None) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    account_concurrency(monkeypatch, limit=1000, unreserved=1000)  # AWS's default quota
    with mock_aws():
        yield


def test_synth_prints_both_templates_and_the_folder_last(synthesized: Any) -> None:
    assert synthesized.exit_code == 0
    *templates, last = synthesized.stdout_lines
    assert Path(last) == synthesized.outdir
    paths = [Path(line.split(": ", 1)[1]) for line in templates]
    assert sorted(path.name for path in paths) == [
        "abtest-direct.template.json",
        "abtest-storage-first.template.json",
    ]
    assert all(path.is_file() for path in paths)


@pytest.mark.parametrize("command", ["deploy", "destroy"])
def test_without_credentials_one_clear_line(
    no_aws_credentials: None, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main([command, "--region", REGION]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"asyncbench: error: {NO_CREDENTIALS_MESSAGE}"]
    assert captured.out == ""


def test_deploy_runs_the_cli_then_writes_the_endpoints_file(
    fake_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []
    names = stack_names(StackConfig(name_prefix="mine"))

    def fake_run_cdk(arguments: list[str], **options: Any) -> None:
        calls.append((list(arguments), options))
        if arguments[0] == "deploy":  # what CloudFormation holds after a real deploy
            cloudformation = boto3.client("cloudformation", region_name=REGION)
            for variant, name in names.items():
                create_stack(cloudformation, name, variant_outputs(variant))

    monkeypatch.setattr(cdk_cli, "run_cdk", fake_run_cdk)
    endpoints_path = tmp_path / "endpoints-aws.json"
    argv = ["deploy", "--region", REGION, "--set", "name_prefix=mine"]
    assert main([*argv, "--endpoints", str(endpoints_path)]) == 0

    assert [arguments for arguments, _ in calls] == [
        ["bootstrap"],
        ["deploy", *names.values(), "--require-approval", "never"],
    ]
    assert calls[1][1]["config"].name_prefix == "mine"
    assert calls[1][1]["region"] == REGION
    assert capsys.readouterr().out.splitlines()[-1] == str(endpoints_path)
    endpoints = read_endpoints(endpoints_path, target="aws")
    assert endpoints.target == "aws"
    assert endpoints.variant("storage_first").failure_destination is not None
    assert endpoints.extra["stack_config"]["name_prefix"] == "mine"  # for the run manifest
    # What `asyncbench redrive` invokes (Endpoints.function_name).
    assert endpoints.extra["functions"] == {
        "direct": "direct-ProcessorFunction-XYZ",
        "storage_first": "storage-first-ProcessorFunction-XYZ",
    }


def test_deploy_without_allow_cidr_warns_in_one_line_and_with_it_passes_the_cidrs(
    fake_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    configs: list[StackConfig] = []

    def fake_run_cdk(arguments: list[str], **options: Any) -> None:
        configs.append(options["config"])
        if arguments[0] == "deploy":
            cloudformation = boto3.client("cloudformation", region_name=REGION)
            existing = {s["StackName"] for s in cloudformation.list_stacks()["StackSummaries"]}
            for variant, name in stack_names(options["config"]).items():
                if name not in existing:  # a second deploy updates what the first created
                    create_stack(cloudformation, name, variant_outputs(variant))

    monkeypatch.setattr(cdk_cli, "run_cdk", fake_run_cdk)
    endpoints = ["--endpoints", str(tmp_path / "e.json"), "--no-bootstrap"]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value="28", Type="String"
    )
    assert main(["deploy", "--region", REGION, *endpoints]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [OPEN_ENDPOINTS_WARNING]
    argv = ["deploy", "--region", REGION, *endpoints, "--allow-cidr", "203.0.113.7/32"]
    assert main([*argv, "--allow-cidr", "198.51.100.0/24"]) == 0
    assert capsys.readouterr().err == ""
    assert configs[-1].allowed_cidrs == ("203.0.113.7/32", "198.51.100.0/24")


def test_destroy_lists_the_account_level_role_it_leaves(
    fake_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    outputs = variant_outputs("direct") | {
        OUTPUT_KEYS["account_role_arn"]: "arn:aws:iam::123456789012:role/direct-CloudWatchRole"
    }
    create_stack(cloudformation, stack_names(StackConfig())["direct"], outputs)
    monkeypatch.setattr(cdk_cli, "run_cdk", lambda arguments, **_: None)
    assert main(["destroy", "--region", REGION, "--endpoints", str(tmp_path / "e.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "arn:aws:iam::123456789012:role/direct-CloudWatchRole" in last
    assert "cloudWatchRoleArn" in last and REGION in last


def test_destroy_removes_the_stale_endpoints_file(
    fake_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(cdk_cli, "run_cdk", lambda arguments, **_: calls.append(list(arguments)))
    endpoints_path = tmp_path / "endpoints-aws.json"
    endpoints_path.write_text("{}", encoding="utf-8")
    assert main(["destroy", "--region", REGION, "--endpoints", str(endpoints_path)]) == 0
    assert calls == [["destroy", *stack_names(StackConfig()).values(), "--force"]]
    assert not endpoints_path.exists()


def test_run_cdk_pins_the_cli_and_switches_telemetry_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_cli = tmp_path / ".bin" / "cdk"
    fake_cli.parent.mkdir()
    fake_cli.write_text("", encoding="utf-8")
    monkeypatch.setenv("ASYNCBENCH_NODE_MODULES", str(tmp_path))
    monkeypatch.setattr(cdk_cli.shutil, "which", lambda name: f"/usr/bin/{name}")
    seen: dict[str, Any] = {}

    def runner(command: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
        seen.update(command=command, **options)
        return subprocess.CompletedProcess(command, 0)

    config = StackConfig(batch_size=42)
    run_cdk(
        ["deploy", "a", "b"],
        config=config,
        region="eu-central-1",
        profile="bench",
        outdir=tmp_path / "out",
        runner=runner,
    )
    command = seen["command"]
    assert command[:4] == [str(fake_cli), "deploy", "a", "b"]
    assert {"--no-notices", "--no-version-reporting"} <= set(command)
    assert command[command.index("--profile") + 1] == "bench"
    assert command[command.index("--app") + 1].endswith(" -m stack.app")
    assert command[command.index("--output") + 1] == str((tmp_path / "out").resolve())
    env = seen["env"]
    assert env["CDK_DISABLE_CLI_TELEMETRY"] == "true"
    assert env["CDK_DISABLE_VERSION_CHECK"] == "1"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-central-1"
    assert StackConfig(**json.loads(env[CONFIG_ENV_VAR])) == config


def test_cdk_runs_on_the_supported_node_bootstrap_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    node = tmp_path / "node" / "node_modules" / ".bin" / "node"
    monkeypatch.setenv("ASYNCBENCH_TOOLS_DIR", str(tmp_path))
    monkeypatch.delenv("JSII_NODE", raising=False)
    env = cdk_cli.cdk_environment(StackConfig(), region=None, base={"PATH": "/usr/bin"})
    assert env["PATH"] == "/usr/bin" and "JSII_NODE" not in env  # none installed: the system's
    node.parent.mkdir(parents=True)
    node.write_text("", encoding="utf-8")
    env = cdk_cli.cdk_environment(StackConfig(), region=None, base={"PATH": "/usr/bin"})
    assert env["PATH"].split(":") == [str(node.parent), "/usr/bin"]
    assert env["JSII_NODE"] == str(node)


def test_run_cdk_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cdk_cli, "cdk_command", lambda: ["cdk"])
    with pytest.raises(Exception, match=r"`cdk deploy` failed with exit code 3"):
        run_cdk(
            ["deploy"],
            config=StackConfig(),
            region=None,
            profile=None,
            outdir=tmp_path,
            runner=lambda command, **_: subprocess.CompletedProcess(command, 3),
        )


@pytest.mark.parametrize("missing", ["node", "cdk"])
def test_missing_node_or_cdk_cli_names_npm_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    monkeypatch.setenv("ASYNCBENCH_NODE_MODULES", str(tmp_path))  # no .bin/cdk in there
    available = {"node"} if missing == "cdk" else set()
    monkeypatch.setattr(
        cdk_cli.shutil, "which", lambda name: f"/usr/bin/{name}" if name in available else None
    )
    with pytest.raises(DependencyMissingError, match="npm ci"):
        cdk_cli.cdk_command()


def test_app_reads_the_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    assert config_from_environment() == StackConfig()
    monkeypatch.setenv(CONFIG_ENV_VAR, json.dumps({"batch_size": 7}))
    assert config_from_environment().batch_size == 7
    monkeypatch.setenv(CONFIG_ENV_VAR, json.dumps({"batch_sise": 7}))
    with pytest.raises(ConfigError, match="batch_sise"):
        config_from_environment()
    monkeypatch.setenv(CONFIG_ENV_VAR, "{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_environment()
