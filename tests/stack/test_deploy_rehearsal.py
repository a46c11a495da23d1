"""The deploy rehearsal: `asyncbench deploy` -> stack outputs -> endpoints file -> run preflight ->
collection -> `asyncbench destroy`, end to end, with the real CDK CLI against moto's server mode.

What it proves: the pinned CDK CLI bootstraps (the CDKToolkit stack, its asset bucket and the
SSM version parameter), publishes the Lambda code asset and both templates to S3, creates and
executes a change set per stack in dependency order (direct, then storage-first); the stacks'
outputs become the endpoints file the run and re-drive read (tables, queue, function and log
group names, API ids, the retained account-level role); the run's preflight and collection read
those very resources (DynamoDB scan, stream resolution, SQS long polling, CloudWatch Logs); and
`destroy` removes both stacks, the endpoints file, and names the role it keeps.

What moto cannot play, and who covers it instead:
- CloudFormation gaps bridged in ``rehearsal_moto_server.py`` (no ``AWS::ApiGateway::Stage``,
  DependsOn of a Deployment ignored, change-set stacks without outputs); moto also skips
  ``AWS::ApiGateway::Account``, ``AWS::SQS::QueuePolicy`` and ``AWS::S3::BucketPolicy``.
  The templates' properties are asserted by test_templates/test_stack_fixes instead.
- Lambda's GetAccountSettings (not implemented): the rehearsal deploys with
  ``reserved_concurrency=null``; the preflight's concurrency check is test_preflight's.
- Nothing runs: no handler executes (moto runs no Lambda without Docker), no request reaches an
  API, no stream triggers the function, IAM is not enforced. Only a real account proves the
  IAM grants, the resource policy, the mapping's behaviour and the figures CloudWatch reports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from loadtests.collect import TrialWindow, collect_trial
from loadtests.collect_aws import AwsStageSide
from stack.endpoints import read_endpoints

pytestmark = [pytest.mark.slow]

REGION = "us-east-1"
SERVER = Path(__file__).with_name("rehearsal_moto_server.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_server() -> Iterator[dict[str, str]]:
    """moto's server on localhost (its CloudFormation resolves S3 template URLs by that name)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "-H", "localhost", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "moto's server exited"
                assert time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.2)
        yield env
    finally:
        process.terminate()
        process.wait(timeout=10)


def _asyncbench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "asyncbench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, **env},
        check=False,
    )


def _report(request_id: str) -> str:
    return f"REPORT RequestId: {request_id}\tDuration: 41.5 ms\tBilled Duration: 42 ms\t"


def test_deploy_outputs_endpoints_preflight_collection_destroy(
    moto_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoints_path = tmp_path / "endpoints-aws.json"
    common = ["--region", REGION, "--endpoints", str(endpoints_path), "--out", str(tmp_path)]
    deployed = _asyncbench(
        ["deploy", *common, "--set", "reserved_concurrency=null", "--set", "name_prefix=rehearsal"],
        moto_server,
    )
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert deployed.stdout.strip().splitlines()[-1] == str(endpoints_path)
    assert "Bootstrapping environment" in deployed.stderr + deployed.stdout
    assert "--allow-cidr" in deployed.stderr  # the open-endpoints warning

    # Stack outputs -> endpoints file.
    endpoints = read_endpoints(endpoints_path, target="aws")
    assert endpoints.region == REGION
    assert endpoints.variant("direct").base_url.endswith(".amazonaws.com/direct")
    assert endpoints.variant("storage_first").failure_destination.startswith("https://sqs.")
    resources = endpoints.extra["aws_resources"]
    assert resources["direct"]["account_role_arn"].startswith("arn:aws:iam::")
    assert endpoints.function_name("storage_first") == resources["storage_first"]["function_name"]
    assert endpoints.extra["stack_config"]["name_prefix"] == "rehearsal"

    for key, value in moto_server.items():
        monkeypatch.setenv(key, value)
    session = boto3.Session(region_name=REGION)
    # The Lambda code asset CDK published is what the function was created from.
    code = session.client("lambda").get_function(
        FunctionName=endpoints.function_name("storage_first")
    )
    assert code["Configuration"]["Handler"] == "processor.stream.handler"
    assert code["Configuration"]["Timeout"] == 28

    # Run preflight, then one trial's collection on the deployed resources.
    run_id = "rehearsal-run"
    side = AwsStageSide(endpoints, run_id, session=session, long_poll_s=1, settle_s=0)
    side.check()
    dynamodb = session.client("dynamodb")
    now_ms = int(time.time() * 1000)
    table = endpoints.variant("storage_first").table
    for request_id, status in (("ok", "SUCCEEDED"), ("parked", "PENDING")):
        dynamodb.put_item(
            TableName=table,
            Item={
                "id": {"S": request_id},
                "run_id": {"S": run_id},
                "status": {"S": status},
                "attempts": {"N": "1"},
                "accepted_at_ms": {"N": str(now_ms)},
                "request": {"S": "{}"},
            },
        )
    # moto's CloudFormation-made table writes no stream records (its StreamSpecification is
    # kept but not wired to the stream): the record names a range that cannot be resolved,
    # which collection keeps without request id. Resolution is test_collect_aws's (in-process).
    stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    parked: dict[str, Any] = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 21},
        "timestamp": "2026-12-06T04:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001",
            "startSequenceNumber": "100",
            "endSequenceNumber": "100",
            "batchSize": 1,
            "streamArn": stream_arn,
        },
    }
    queue = endpoints.variant("storage_first").failure_destination
    session.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(parked))
    logs = session.client("logs")
    group = resources["storage_first"]["log_group"]
    logs.create_log_stream(logGroupName=group, logStreamName="rehearsal")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="rehearsal",
        logEvents=[{"timestamp": now_ms + 10, "message": _report("inv-1")}],
    )
    client = pd.DataFrame({"trial": 1, "request_id": ["ok", "parked"], "outcome": "accepted"})
    side.begin_trial()
    window = TrialWindow(run_id, 1, "storage_first", now_ms - 1000, now_ms + 1000)
    collection = collect_trial(side, window, client, timeout_s=3)
    assert set(collection.server["request_id"]) == {"ok", "parked"}
    assert collection.unfinished == 1  # "parked" is PENDING and its record names no id
    assert len(collection.parked) == 1 and collection.parked["request_id"].isna().all()
    assert collection.parked["condition"].iloc[0] == "RetryAttemptsExhausted"
    trial = {"trial": 1, "variant": "storage_first", "started_at_ms": now_ms - 1000,
             "collected_at_ms": now_ms + 1000}  # fmt: skip
    rows = side.finish_run([trial], wait=lambda _: False, progress=lambda _: None)
    attributes = session.client("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"  # deleted once its row was written
    invocations = [row for row in rows if row["metric"] == "Invocations"]
    assert [row["trial"] for row in invocations] == [1]

    # Destroy: both stacks gone, the endpoints file removed, the kept role named.
    destroyed = _asyncbench(["destroy", *common, "--set", "name_prefix=rehearsal"], moto_server)
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    assert resources["direct"]["account_role_arn"] in destroyed.stdout.strip().splitlines()[-1]
    assert not endpoints_path.exists()
    statuses = {
        summary["StackName"]: summary["StackStatus"]
        for summary in session.client("cloudformation").list_stacks()["StackSummaries"]
    }
    assert statuses["rehearsal-direct"] == statuses["rehearsal-storage-first"] == "DELETE_COMPLETE"
