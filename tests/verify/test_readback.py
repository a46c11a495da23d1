"""``verify``'s AWS read-back against moto: a mapping and functions deployed as the config
says pass every row; a setting changed by hand fails its row and only its row."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stack.config import STREAM_FILTER_PATTERN, StackConfig
from stack.variants import HANDLERS
from stack.verify.readback import function_checks, mapping_checks

REGION = "eu-west-1"
CONFIG = StackConfig()


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="processor", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("processor/stream.py", "def handler(event, context): pass\n")
        lambda_client = boto3.client("lambda", region_name=REGION)
        lambda_client.create_function(
            FunctionName="sf-processor",
            Runtime="python3.12",
            Role=role,
            Handler=HANDLERS["storage_first"],
            Code={"ZipFile": code.getvalue()},
            MemorySize=CONFIG.memory_mb,
            Timeout=CONFIG.timeout_s,
            Architectures=[CONFIG.architecture],
            Environment={"Variables": CONFIG.processor_environment("sf-table")},
        )
        lambda_client.put_function_concurrency(
            FunctionName="sf-processor", ReservedConcurrentExecutions=CONFIG.reserved_concurrency
        )
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        stream_arn = dynamodb.create_table(
            TableName="sf-table",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]["LatestStreamArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="failures")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        mapping = lambda_client.create_event_source_mapping(
            EventSourceArn=stream_arn,
            FunctionName="sf-processor",
            StartingPosition="TRIM_HORIZON",
            BatchSize=CONFIG.batch_size,
            MaximumBatchingWindowInSeconds=CONFIG.batching_window_s,
            BisectBatchOnFunctionError=CONFIG.bisect_on_error,
            MaximumRetryAttempts=CONFIG.retry_attempts,
            MaximumRecordAgeInSeconds=CONFIG.max_record_age_s,
            ParallelizationFactor=CONFIG.parallelization_factor,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            FilterCriteria={"Filters": [{"Pattern": json.dumps(STREAM_FILTER_PATTERN)}]},
            DestinationConfig={"OnFailure": {"Destination": queue_arn}},
        )
        yield {"client": lambda_client, "mapping_id": mapping["UUID"], "queue_arn": queue_arn}


def test_a_stack_deployed_from_the_config_passes_every_row(deployed: dict[str, Any]):
    client = deployed["client"]
    rows = mapping_checks(client, deployed["mapping_id"], CONFIG, deployed["queue_arn"])
    rows += function_checks(client, "storage_first", "sf-processor", CONFIG, "sf-table")
    assert [row.name for row in rows if row.passed is not True] == []
    names = {row.name for row in rows}
    assert {"mapping BatchSize", "mapping FilterCriteria", "mapping MaximumRetryAttempts"} <= names
    assert "storage-first function reserved concurrency" in names


def test_a_setting_that_differs_fails_its_row_only(deployed: dict[str, Any]):
    client = deployed["client"]
    other = StackConfig(batch_size=50, memory_mb=512)
    rows = mapping_checks(client, deployed["mapping_id"], other, deployed["queue_arn"])
    rows += function_checks(client, "storage_first", "sf-processor", other, "sf-table")
    failed = {row.name: row.detail for row in rows if row.passed is False}
    assert set(failed) == {"mapping BatchSize", "storage-first function MemorySize"}
    assert failed["mapping BatchSize"] == "deployed 100, config 50"
    wrong_queue = mapping_checks(client, deployed["mapping_id"], CONFIG, "arn:aws:sqs:x:1:other")
    assert [row.name for row in wrong_queue if row.passed is False] == [
        "mapping DestinationConfig.OnFailure"
    ]
