"""The one structured line each invocation prints (read from CloudWatch Logs on AWS runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processor import direct, stream
from processor.runtime import INVOCATION_RECORD, Runtime
from tests.processor.events import START_MS, FakeContext, batch, insert, proxy_event

OK = '{"work_ms": 20}'
DOWN = json.dumps({"work_ms": 20, "outages": [[START_MS - 60_000, START_MS + 60_000]]})


def test_stream_batch_prints_one_line_with_batch_size_run_and_cold_start(
    runtime: Runtime, dynamodb: Any, invocations: list[dict[str, Any]]
) -> None:
    records = [insert(dynamodb, name, OK) for name in ("a", "b", "c")]
    stream.handle(batch(*records), FakeContext(), runtime)
    stream.handle(batch(insert(dynamodb, "d", OK)), FakeContext(), runtime)
    first, second = invocations
    assert first["record"] == INVOCATION_RECORD and first["handler"] == "stream"
    assert first["batchSize"] == 3 and second["batchSize"] == 1
    assert first["runIds"] == ["run-1"]
    assert first["awsRequestId"] == "lambda-invocation-1"
    assert (first["coldStart"], second["coldStart"]) == (True, False)
    assert first["endedAtMs"] - first["startedAtMs"] == 60  # 3 x 20 ms of simulated work
    assert first["error"] is None
    json.dumps(first)  # a JSON line as printed


def test_direct_prints_its_line_also_when_the_invocation_fails(
    runtime: Runtime, invocations: list[dict[str, Any]]
) -> None:
    event = proxy_event(DOWN, headers={"x-run-id": "run-7"})
    with pytest.raises(Exception, match="outage"):
        direct.handle(event, FakeContext(), runtime)
    (line,) = invocations
    assert line["handler"] == "direct" and line["batchSize"] == 1
    assert line["runIds"] == ["run-7"]
    assert line["error"] == "TransientFailure"
