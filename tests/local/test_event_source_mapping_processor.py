"""The event source mapping driving the real stream handler in a real local Lambda runtime."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.config import StackConfig
from stack.local.awslambda.runtime import LocalFunction
from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION
from stack.local.event_source_mapping.mapping import EventSourceMapping
from stack.local.metrics import MetricsLog
from tests.local.esm_support import create_stream_table, dynamodb_endpoint, wait_until

pytestmark = pytest.mark.local_stage


@pytest.fixture(scope="module")
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from dynamodb_endpoint(request)


def pending_item(key: str, body: dict[str, object]) -> dict[str, dict[str, str]]:
    """The item the storage-first mapping template writes."""
    return {
        "id": {"S": key},
        "run_id": {"S": "esm-test"},
        "status": {"S": "PENDING"},
        "attempts": {"N": "0"},
        "duplicates": {"N": "0"},
        "accepted_at_ms": {"N": str(int(time.time() * 1000))},
        "request": {"S": json.dumps(body)},
    }


def test_real_stream_handler_processes_inserts_and_parks_nothing(
    endpoint: str, tmp_path: Path
) -> None:
    client, table, stream_arn = create_stream_table(endpoint)
    config = StackConfig(retry_backoff_base_ms=10, retry_backoff_max_ms=20)
    environment = {
        **config.processor_environment(table),
        "DYNAMODB_ENDPOINT_URL": endpoint,
        "AWS_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
    }
    metrics = MetricsLog(tmp_path / "metrics.jsonl")
    function = LocalFunction(
        name="stream-processor",
        variant="storage_first",
        handler="processor.stream.handler",
        environment=environment,
        timeout_s=30,
        memory_mb=256,
        concurrency=2,
        metrics=metrics,
    )
    mapping = EventSourceMapping(
        dynamodb_endpoint=endpoint,
        stream_arn=stream_arn,
        function=function,
        config=config,
        failure_destination=tmp_path / "failures.jsonl",
        metrics=metrics,
        poll_interval_s=0.1,
    )
    keys = [f"req-{index}" for index in range(5)]
    try:
        mapping.start()
        for key in keys:
            client.put_item(TableName=table, Item=pending_item(key, {"work_ms": 0}))
        client.put_item(TableName=table, Item=pending_item("poison", {"fail": "always"}))

        def statuses() -> dict[str, str]:
            items = client.scan(TableName=table, ConsistentRead=True)["Items"]
            return {item["id"]["S"]: item["status"]["S"] for item in items}

        wait_until(
            lambda: all(status != "PENDING" for status in statuses().values()),
            timeout_s=30,
            what="every request processed",
        )
        assert statuses() == {**dict.fromkeys(keys, "SUCCEEDED"), "poison": "FAILED"}
        # The handler's own UpdateItem calls make MODIFY records; the filter drops them all.
        wait_until(lambda: mapping.filtered_out_count >= 6, what="MODIFY records filtered")
        assert mapping.failure_destination.read() == []  # a permanent failure is not retried
    finally:
        mapping.stop()
        function.close()
        metrics.close()
        client.close()
    lines = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    names = {json.loads(line)["metric"] for line in lines}
    assert {"IteratorAge", "BatchSize", "Invocations"} <= names
