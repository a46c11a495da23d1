"""Deploy preflight: each refusal is one line with the fix, before CloudFormation runs.

moto plays STS, CloudFormation, SSM and Lambda's GetFunctionConcurrency; it has no
GetAccountSettings, which ``aws_fakes.account_concurrency`` answers instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from asyncbench.cli import main
from asyncbench.errors import ConfigError, StackNotDeployedError
from stack import cdk_cli
from stack.config import StackConfig
from stack.outputs import stack_names
from stack.preflight import check_concurrency, check_stack_states

from .aws_fakes import account_concurrency
from .test_cli import no_aws_credentials  # noqa: F401  (fixture)
from .test_outputs import REGION, create_stack, variant_outputs


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch, no_aws_credentials: None) -> Iterator[list[Any]]:  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    calls: list[Any] = []
    monkeypatch.setattr(cdk_cli, "run_cdk", lambda arguments, **_: calls.append(arguments))
    with mock_aws():
        yield calls


def test_an_account_limit_of_10_is_refused_in_one_line_with_the_fix(
    moto_aws: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    account_concurrency(monkeypatch, limit=10, unreserved=10)
    assert main(["deploy", "--region", REGION, "--endpoints", str(tmp_path / "e.json")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "concurrency in eu-west-1 is 10 (10 unreserved)" in lines[0]
    assert "--set reserved_concurrency=null" in lines[0]
    assert "throttle scenario" in lines[0]
    assert moto_aws == []  # CloudFormation never ran
    # With the fix, the same account deploys (and the warning about open endpoints is shown).
    argv = ["deploy", "--region", REGION, "--endpoints", str(tmp_path / "e.json")]
    # The fake CLI deploys nothing, so reading the outputs fails after it ran: preflight passed.
    assert main([*argv, "--set", "reserved_concurrency=null"]) == 2
    assert "is not deployed" in capsys.readouterr().err
    assert moto_aws[0] == ["bootstrap"]


def test_a_redeploy_counts_the_concurrency_its_own_functions_already_reserve() -> None:
    class Lambda:
        def get_account_settings(self) -> dict[str, Any]:
            # 1000 in all, 20 of it reserved by our two functions (10 each): 980 unreserved.
            return {
                "AccountLimit": {"ConcurrentExecutions": 120, "UnreservedConcurrentExecutions": 100}
            }

        def get_function_concurrency(self, FunctionName: str) -> dict[str, Any]:
            return {"ReservedConcurrentExecutions": 10}

    existing = {
        variant: {
            "Outputs": [
                {"OutputKey": k, "OutputValue": v} for k, v in variant_outputs(variant).items()
            ]
        }
        for variant in ("direct", "storage_first")
    }
    check_concurrency(Lambda(), StackConfig(reserved_concurrency=10), REGION, existing)
    with pytest.raises(ConfigError, match="leave 80"):
        check_concurrency(Lambda(), StackConfig(reserved_concurrency=20), REGION, existing)
    check_concurrency(Lambda(), StackConfig(reserved_concurrency=None), REGION, existing)


def test_missing_bootstrap_is_one_line(
    moto_aws: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    account_concurrency(monkeypatch, limit=1000, unreserved=1000)
    assert main(["deploy", "--region", REGION, "--no-bootstrap"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "not bootstrapped for the CDK" in line and "without --no-bootstrap" in line
    assert moto_aws == []


def test_a_stack_in_a_failed_state_is_one_line() -> None:
    class CloudFormation:
        def __init__(self, status: str) -> None:
            self.status = status

        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            return {"Stacks": [{"StackName": StackName, "StackStatus": self.status}]}

    names = stack_names(StackConfig())
    with pytest.raises(StackNotDeployedError, match=r"ROLLBACK_COMPLETE.*asyncbench destroy"):
        check_stack_states(CloudFormation("ROLLBACK_COMPLETE"), names)
    with pytest.raises(StackNotDeployedError, match="UPDATE_IN_PROGRESS; wait"):
        check_stack_states(CloudFormation("UPDATE_IN_PROGRESS"), names)
    assert set(check_stack_states(CloudFormation("UPDATE_COMPLETE"), names)) == set(names)


def test_existing_healthy_stacks_pass_against_moto(moto_aws: list[Any]) -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    names = stack_names(StackConfig())
    create_stack(cloudformation, names["direct"], variant_outputs("direct"))
    assert set(check_stack_states(cloudformation, names)) == {"direct"}


def test_a_region_that_refuses_the_credentials_is_one_line(
    moto_aws: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from botocore.exceptions import ClientError

    from stack import preflight

    real = preflight.check_credentials

    def refuse(sts: Any, region: str) -> str:
        # What STS answers in an opt-in region the account has not enabled.
        error = ClientError({"Error": {"Code": "InvalidClientTokenId"}}, "GetCallerIdentity")
        return real(_Raises(error), region)

    monkeypatch.setattr(preflight, "check_credentials", refuse)
    assert main(["deploy", "--region", "ap-east-1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "refused the credentials in region ap-east-1 (InvalidClientTokenId)" in line
    assert "opt-in" in line


class _Raises:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_caller_identity(self) -> dict[str, Any]:
        raise self.error
