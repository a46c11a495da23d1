"""CloudFormation outputs -> endpoints file, against moto's in-process CloudFormation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws

from asyncbench.errors import StackNotDeployedError
from stack.config import StackConfig
from stack.outputs import (
    AWS_RESOURCES_KEY,
    OUTPUT_KEYS,
    endpoints_from_outputs,
    fetch_endpoints,
    stack_names,
)

REGION = "eu-west-1"
NAMES = stack_names(StackConfig())


def variant_outputs(variant: str) -> dict[str, str]:
    """Outputs as the deployed stacks publish them (keys from OUTPUT_KEYS)."""
    stage = {"direct": "direct", "storage_first": "storage-first"}[variant]
    values = {
        "base_url": f"https://abc{len(stage)}.execute-api.{REGION}.amazonaws.com/{stage}/",
        "table": f"{stage}-RequestsTable-XYZ",
        "region": REGION,
        "function_name": f"{stage}-ProcessorFunction-XYZ",
        "log_group": f"{stage}-ProcessorLogs-XYZ",
        "api_id": f"abc{len(stage)}",
        "api_name": f"asyncbench-{stage}",
        "stage": stage,
    }
    if variant == "storage_first":
        values |= {
            "failure_queue_url": f"https://sqs.{REGION}.amazonaws.com/123456789012/failures",
            "failure_queue_arn": f"arn:aws:sqs:{REGION}:123456789012:failures",
            "event_source_mapping_id": "8a3b5f0e-0000-4000-8000-000000000000",
        }
    return {OUTPUT_KEYS[key]: value for key, value in values.items()}


def create_stack(cloudformation: Any, name: str, outputs: Mapping[str, str]) -> None:
    template = {
        # A real (moto-supported) resource: CloudFormation refuses a template without one.
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.fixture
def cloudformation(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def test_deployed_stacks_become_the_endpoints_file(cloudformation: Any) -> None:
    for variant, name in NAMES.items():
        create_stack(cloudformation, name, variant_outputs(variant))

    endpoints = fetch_endpoints(cloudformation, NAMES)

    assert endpoints.target == "aws"
    assert endpoints.region == REGION
    assert endpoints.dynamodb_endpoint is None
    direct = endpoints.variant("direct")
    assert direct.base_url == f"https://abc6.execute-api.{REGION}.amazonaws.com/direct"
    assert direct.table == "direct-RequestsTable-XYZ"
    assert direct.failure_destination is None
    storage_first = endpoints.variant("storage_first")
    assert storage_first.base_url.endswith("/storage-first")
    assert storage_first.failure_destination == (
        f"https://sqs.{REGION}.amazonaws.com/123456789012/failures"
    )
    resources = endpoints.extra[AWS_RESOURCES_KEY]
    assert resources["storage_first"]["event_source_mapping_id"].startswith("8a3b5f0e")
    assert resources["direct"]["function_name"] == "direct-ProcessorFunction-XYZ"
    assert resources["direct"]["stack_name"] == NAMES["direct"]
    assert resources["storage_first"]["api_name"] == "asyncbench-storage-first"
    # The file round-trips through the shared reader.
    assert type(endpoints).from_dict(endpoints.to_dict()) == endpoints


def test_missing_stack_says_to_deploy(cloudformation: Any) -> None:
    create_stack(cloudformation, NAMES["direct"], variant_outputs("direct"))
    with pytest.raises(StackNotDeployedError, match=r"asyncbench-storage-first is not deployed"):
        fetch_endpoints(cloudformation, NAMES)


def test_missing_output_names_the_key(cloudformation: Any) -> None:
    for variant, name in NAMES.items():
        outputs = variant_outputs(variant)
        if variant == "storage_first":
            del outputs[OUTPUT_KEYS["failure_queue_url"]]
        create_stack(cloudformation, name, outputs)
    with pytest.raises(StackNotDeployedError, match="no output FailureQueueUrl"):
        fetch_endpoints(cloudformation, NAMES)


def test_stacks_in_different_regions_are_refused() -> None:
    outputs = {variant: variant_outputs(variant) for variant in NAMES}
    outputs["direct"][OUTPUT_KEYS["region"]] = "us-east-1"
    with pytest.raises(StackNotDeployedError, match="different regions"):
        endpoints_from_outputs(outputs, NAMES)
