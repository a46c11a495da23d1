"""Re-drive on the local stage: an outage longer than the mapping's retry budget parks records
whose items are still PENDING; `asyncbench redrive RUN_DIR` processes them again through the
stage's stream function (boto3 ``lambda`` invoke), idempotently, and the run folder shows it.

The stage here has a tiny retry budget (1 retry, 20-50 ms back-off, batches of 5), so a 5 s
outage outlasts it by far and the test takes seconds.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from asyncbench.cli import main
from loadtests.collect import TrialWindow, collect_trial
from loadtests.collect_dynamodb import scan_run_items
from loadtests.collect_local import LocalStageSide, local_clients
from reports.schema import PARKED, REDRIVEN, SERVER, read_table, write_manifest, write_table
from stack.config import StackConfig
from stack.local.dynamodb.dynamodb_local import DynamoDBLocal
from stack.local.settings import LocalStageSettings
from stack.local.stage import LocalStage

pytestmark = [pytest.mark.local_stage]

SMALL_BUDGET = StackConfig(
    name_prefix="redrive",
    retry_attempts=1,
    retry_backoff_base_ms=20,
    retry_backoff_max_ms=50,
    batch_size=5,
    bisect_on_error=False,
)
REQUESTS = 12
OUTAGE_S = 5.0


@pytest.fixture(scope="module")
def small_stage(
    dynamodb_local: DynamoDBLocal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStage]:
    settings = LocalStageSettings(
        state_dir=tmp_path_factory.mktemp("redrive-stage"),
        dynamodb_endpoint=dynamodb_local.endpoint_url,
    )
    stage = LocalStage(SMALL_BUDGET, settings)
    stage.start()
    try:
        yield stage
    finally:
        stage.stop()


def _post(base_url: str, run_id: str, body: dict[str, Any]) -> str:
    request = urllib.request.Request(
        f"{base_url}/requests",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Run-Id": run_id},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return str(json.loads(response.read())["requestId"])


def _wait(condition: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.2)


def _accounting(server: pd.DataFrame, parked_ids: set[str]) -> dict[str, int]:
    counts = Counter(server["status"])
    pending = server[server["status"] == "PENDING"]
    return {
        "PENDING": counts.get("PENDING", 0),
        "SUCCEEDED": counts.get("SUCCEEDED", 0),
        "FAILED": counts.get("FAILED", 0),
        "parked": len(parked_ids),
        "parked_while_pending": int(pending["request_id"].isin(parked_ids).sum()),
    }


def test_redrive_after_an_outage_longer_than_the_retry_budget(
    small_stage: LocalStage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoints = small_stage.endpoints
    base_url = endpoints.variant("storage_first").base_url
    run_id = f"redrive-{uuid.uuid4().hex[:8]}"
    side = LocalStageSide(endpoints, run_id)
    side.begin_trial()
    started_ms = time.time() * 1000
    outage = [[int(started_ms), int(started_ms + OUTAGE_S * 1000)]]
    ids = [_post(base_url, run_id, {"work_ms": 1, "outages": outage}) for _ in range(REQUESTS)]
    ended_ms = time.time() * 1000
    client = pd.DataFrame(
        {"trial": 1, "request_id": ids, "outcome": "accepted", "variant": "storage_first"}
    )
    window = TrialWindow(run_id, 1, "storage_first", started_ms, ended_ms)
    # Collection settles once every item is terminal or parked: well inside the outage.
    collection = collect_trial(side, window, client, timeout_s=OUTAGE_S)
    assert collection.settled, "the retry budget should be spent well inside the outage"

    run_dir = tmp_path / run_id
    write_manifest(run_dir, {"run_id": run_id, "target": "local", "schema_version": 1})
    write_table(run_dir, SERVER, collection.server, part="trial-001")
    write_table(run_dir, PARKED, collection.parked, part="trial-001")
    parked_ids = set(collection.parked["request_id"].dropna())
    before = _accounting(collection.server, parked_ids)
    assert before["parked_while_pending"] > 0  # the data is stored, the mapping gave up on it
    assert before["PENDING"] + before["SUCCEEDED"] + before["FAILED"] == REQUESTS

    # Re-drive only once the outage is over (else the logic fails again, as it should).
    _wait(lambda: time.time() * 1000 > outage[0][1] + 200, OUTAGE_S + 10, "the outage's end")
    argv = ["redrive", "--target", "local", "--endpoints", str(small_stage.endpoints_path)]
    assert main([*argv, str(run_dir), "--pending-older-than", "0"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(run_dir)
    assert out[0].startswith(f"re-drove {before['PENDING']} request(s)")
    assert "still open (PENDING): 0" in out

    redriven = read_table(run_dir, REDRIVEN)
    assert len(redriven) == before["PENDING"]
    assert set(redriven["status_before"]) == {"PENDING"}
    assert set(redriven["status_after"]) == {"SUCCEEDED"}
    assert set(redriven["source"]) <= {"parked", "pending"} and "parked" in set(redriven["source"])
    server = read_table(run_dir, SERVER)
    after = _accounting(server, parked_ids)
    assert after["PENDING"] == 0  # none left open
    assert len(server) == REQUESTS and set(server["request_id"]) == set(ids)  # none lost
    assert after["SUCCEEDED"] == before["SUCCEEDED"] + before["PENDING"]
    assert after["FAILED"] == before["FAILED"]  # a head that gave up stays FAILED, with its error

    # Idempotent: a second re-drive processes nothing and changes nothing.
    dynamodb, _ = local_clients(str(endpoints.dynamodb_endpoint))
    table = endpoints.variant("storage_first").table
    snapshot = sorted(scan_run_items(dynamodb, table, run_id), key=lambda item: item["id"])
    assert main([*argv, str(run_dir), "--pending-older-than", "0"]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert again[0].startswith("re-drove 0 request(s)")
    assert sorted(scan_run_items(dynamodb, table, run_id), key=lambda i: i["id"]) == snapshot
    print(f"accounting before re-drive: {before}; after: {after}")  # for the note
