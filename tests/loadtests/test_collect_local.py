"""Local collection against the real local stage: items, stream resolution, metrics log."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loadtests.collect import TrialWindow, collect_trial
from loadtests.collect_local import JsonLinesTail, LocalStageSide, local_clients
from reports.schema import METRICS, PARKED, SERVER, conform


def test_json_lines_tail_reads_only_new_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    tail = JsonLinesTail(path)
    tail.mark()  # no file yet: start from its beginning
    assert tail.read_new() == []
    path.write_text('{"a": 1}\n{"b": 2}\n')
    tail.mark()
    with path.open("a") as handle:
        handle.write('{"c": 3}\nnot json\n{"d": ')  # a garbled line and a half-written one
    assert tail.read_new() == [{"c": 3}]
    with path.open("a") as handle:
        handle.write("4}\n")
    assert tail.read_new() == [{"d": 4}]
    assert tail.read_new() == []


def _status(base_url: str, request_id: str) -> str:
    with urllib.request.urlopen(f"{base_url}/requests/{request_id}", timeout=10) as response:
        return str(json.loads(response.read())["status"])


def _post(base_url: str, run_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base_url}/requests",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Run-Id": run_id},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def _stream_sequence(endpoint_url: str, table: str, request_id: str) -> dict[str, str]:
    """Where the item's INSERT record sits on the table's stream (polled with a deadline)."""
    dynamodb, streams = local_clients(endpoint_url)
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            for _ in range(50):
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    keys = record["dynamodb"]["Keys"]
                    if keys["id"]["S"] == request_id and record["eventName"] == "INSERT":
                        sequence = record["dynamodb"]["SequenceNumber"]
                        return {"arn": arn, "shard": shard["ShardId"], "sequence": sequence}
                iterator = page.get("NextShardIterator")
                if not iterator or not page["Records"]:
                    break
    raise AssertionError(f"no INSERT record for {request_id} on {table}'s stream")


@pytest.mark.local_stage
def test_local_collection_of_a_storage_first_trial(local_stage: Any, tmp_path: Path) -> None:
    endpoints = local_stage.endpoints
    failure_file = tmp_path / "failures.jsonl"  # not the stage's: other tests read that one
    storage_first = dataclasses.replace(
        endpoints.variants["storage_first"], failure_destination=str(failure_file)
    )
    endpoints = dataclasses.replace(
        endpoints, variants={**endpoints.variants, "storage_first": storage_first}
    )
    run_id = f"collect-{uuid.uuid4().hex[:8]}"
    side = LocalStageSide(endpoints, run_id)
    side.begin_trial()
    started = time.time() * 1000
    base_url = endpoints.variants["storage_first"].base_url
    bodies = [{"work_ms": 1, "payload": f"p{index}"} for index in range(4)]
    bodies.append({"work_ms": 1, "fail": "always"})
    answers = [_post(base_url, run_id, body) for body in bodies]
    assert [status for status, _ in answers] == [202] * 5
    ids = [answer["requestId"] for _, answer in answers]
    ended = time.time() * 1000

    # The poison request is FAILED by the processor before its destination record is written,
    # else a parked record would settle collection before the processor got to it (a race).
    deadline = time.monotonic() + 30
    while _status(base_url, ids[-1]) != "FAILED":
        assert time.monotonic() < deadline, "the poison request never became FAILED"
        time.sleep(0.1)
    # A destination record as the mapping writes it, for the poison request's stream record.
    where = _stream_sequence(endpoints.dynamodb_endpoint, storage_first.table, ids[-1])
    record = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 1},
        "responseContext": {"statusCode": 200},
        "version": "1.0",
        "timestamp": "2026-11-28T14:22:33.568Z",
        "DDBStreamBatchInfo": {
            "shardId": where["shard"],
            "startSequenceNumber": where["sequence"],
            "endSequenceNumber": where["sequence"],
            "batchSize": 1,
            "streamArn": where["arn"],
        },
    }
    failure_file.write_text(json.dumps(record) + "\n")

    client = pd.DataFrame({"trial": 1, "request_id": ids, "outcome": "accepted"})
    window = TrialWindow(run_id, 1, "storage_first", started, ended)
    result = collect_trial(side, window, client, timeout_s=60)

    assert result.settled and result.unfinished == 0
    server = result.server.set_index("request_id")
    assert sorted(server.index) == sorted(ids)
    assert set(server.loc[ids[:4], "status"]) == {"SUCCEEDED"}
    assert server.loc[ids[-1], "status"] == "FAILED" and server.loc[ids[-1], "error"]
    assert (server["accepted_at_ms"] <= server["processed_at_ms"]).all()
    conform(result.server, SERVER)
    assert result.parked["request_id"].tolist() == [ids[-1]]  # resolved through the stream
    conform(result.parked, PARKED)
    metrics = result.metrics
    assert set(metrics["variant"]) == {"storage_first"} and set(metrics["source"]) == {"local"}
    assert "Invocations" in set(metrics["metric"])
    assert metrics["timestamp_ms"].between(started, result.collected_at_ms).all()
    conform(metrics, METRICS)
    # A later trial of the run skips what this one collected.
    again = collect_trial(side, window, client.iloc[0:0], timeout_s=0, skip_ids=result.request_ids)
    assert again.server.empty
