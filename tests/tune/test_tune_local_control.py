"""tune's control calls against the running local stage: applied live, restored, still working."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import boto3
import pytest

from loadtests.tune_control import LambdaSettings, lambda_client_for, mapping_id_for
from stack.endpoints import read_endpoints
from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION
from stack.local.stage import LocalStage

pytestmark = pytest.mark.local_stage


def _status(stage: LocalStage, request_id: str) -> str | None:
    client = boto3.client(
        "dynamodb", endpoint_url=stage.dynamodb_endpoint, region_name=LOCAL_REGION,
        **LOCAL_CREDENTIALS,
    )  # fmt: skip
    item = client.get_item(
        TableName=stage.tables["storage_first"].name, Key={"id": {"S": request_id}}
    ).get("Item")
    return None if item is None else str(item["status"]["S"])


def _post(stage: LocalStage) -> str:
    request = urllib.request.Request(
        stage.gateway_url.rstrip("/") + "/storage-first/requests",
        data=json.dumps({"work_ms": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: dict[str, Any] = json.loads(answer.read())
    return str(body["requestId"])


def test_tune_settings_apply_live_and_restore(local_stage: LocalStage) -> None:
    endpoints = read_endpoints(local_stage.endpoints_path)
    client = lambda_client_for(endpoints)
    function = endpoints.function_name("storage_first")
    settings = LambdaSettings(client, function, mapping_id_for(endpoints, client, function))
    before = settings.snapshot()
    try:
        settings.apply({"parallelization_factor": 3, "batch_size": 7, "batch_concurrency": 4,
                        "memory_mb": 512, "reserved_concurrency": 5})  # fmt: skip
        config = local_stage.variant_configs["storage_first"]
        assert (config.parallelization_factor, config.batch_size) == (3, 7)
        assert local_stage.event_source_mapping.settings.parallelization_factor == 3
        function_now = local_stage.functions["storage_first"]
        assert function_now.environment["BATCH_CONCURRENCY"] == "4"
        assert function_now.concurrency == 5 and function_now.memory_mb == 512
        assert local_stage.variant_configs["direct"].memory_mb == before["memory_mb"]
        # The restarted mapping still processes what is written after the change.
        request_id = _post(local_stage)
        deadline = time.monotonic() + 30
        while _status(local_stage, request_id) != "SUCCEEDED":
            assert time.monotonic() < deadline, "not processed after the reconfiguration"
            time.sleep(0.1)
    finally:
        settings.restore()
    assert settings.current() == before
    restored = local_stage.event_source_mapping.settings.parallelization_factor
    assert restored == before["parallelization_factor"]
