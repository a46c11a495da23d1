"""tune applies configurations in place and restores the deployed one (AWS calls under moto)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from asyncbench.errors import ConfigError
from loadtests.tune_control import LambdaSettings
from loadtests.tune_grid import parse_grid, set_line
from stack.config import StackConfig

REGION = "us-east-1"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="fn",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        stream = dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]["LatestStreamArn"]
        client = boto3.client("lambda", region_name=REGION)
        client.create_function(
            FunctionName="sf",
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            MemorySize=256,
            Environment={"Variables": {"TABLE_NAME": "t", "BATCH_CONCURRENCY": "1"}},
        )
        client.put_function_concurrency(FunctionName="sf", ReservedConcurrentExecutions=10)
        mapping = client.create_event_source_mapping(
            EventSourceArn=stream, FunctionName="sf", BatchSize=100, StartingPosition="LATEST",
            ParallelizationFactor=1,
        )["UUID"]  # fmt: skip
        yield client, mapping


def test_apply_changes_mapping_function_and_concurrency_then_restore_puts_them_back(
    deployed: tuple[Any, str],
) -> None:
    client, mapping = deployed
    settings = LambdaSettings(client, "sf", mapping, sleep=lambda seconds: None)
    before = settings.snapshot()
    assert before == {
        "memory_mb": 256, "batch_concurrency": 1, "reserved_concurrency": 10,
        "batch_size": 100,
        "parallelization_factor": 1,
    }  # fmt: skip

    settings.apply({"parallelization_factor": 4, "batch_size": 10, "batch_concurrency": 8,
                    "memory_mb": 512, "reserved_concurrency": 20})  # fmt: skip
    now = settings.current()
    assert now["parallelization_factor"] == 4 and now["batch_size"] == 10
    assert now["batch_concurrency"] == 8 and now["memory_mb"] == 512
    assert now["reserved_concurrency"] == 20
    variables = client.get_function_configuration(FunctionName="sf")["Environment"]["Variables"]
    assert variables["TABLE_NAME"] == "t"  # other variables kept

    settings.restore()
    assert settings.current() == before


def test_grid_is_validated_by_the_stack_and_gives_a_set_line() -> None:
    grid = parse_grid(["parallelization_factor=1,4", "batch_concurrency=1,8"], "storage_first",
                      StackConfig())  # fmt: skip
    labels = [configuration.label for configuration in grid.configurations()]
    assert labels[0] == "parallelization_factor=1,batch_concurrency=1" and len(labels) == 4
    assert set_line({"parallelization_factor": 4, "reserved_concurrency": None}) == (
        "--set parallelization_factor=4 --set reserved_concurrency=null"
    )
    with pytest.raises(ConfigError, match="parallelization_factor"):
        parse_grid(["parallelization_factor=1,11"], "storage_first", StackConfig())
    with pytest.raises(ConfigError, match="not a setting tune changes"):
        parse_grid(["batch_size=1,2"], "direct", StackConfig())


def test_a_wrong_grid_is_named_before_any_stage_is_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncbench.cli import main

    monkeypatch.setenv("ASYNCBENCH_STATE_DIR", str(tmp_path))  # no stage, no endpoints file
    assert main(["tune", "--grid", "nope=1,2", "--rate", "10"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--grid nope" in error[0] and "endpoints" not in error[0]
