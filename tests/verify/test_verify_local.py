"""``asyncbench verify`` against the real local stage passes every check; against a stage that
answers wrongly it fails the rows that differ and exits 1."""

from __future__ import annotations

from typing import Any

import pytest

from asyncbench.cli import main
from stack.local.stage import LocalStage
from stack.verify import checks
from stack.verify.checks import Answer, StageClient, behaviour_checks

pytestmark = pytest.mark.local_stage


def test_every_check_passes_on_the_local_stage(
    local_stage: LocalStage, capsys: pytest.CaptureFixture[str]
):
    code = main(["verify", "--endpoints", str(local_stage.endpoints_path)])
    output = capsys.readouterr().out
    assert code == 0, output
    rows = [line for line in output.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert len(rows) == 16
    assert all(row.startswith("PASS") for row in rows), output
    assert "a redelivered record is not processed twice" in output
    assert output.splitlines()[-1].startswith("verify: 16 checks, 0 failed, 0 skipped")


def test_a_stage_that_answers_wrongly_fails_those_rows(
    local_stage: LocalStage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    original = StageClient.post

    def post(self: StageClient, variant: str, body: bytes, **kw: Any) -> Answer:
        answer = original(self, variant, body, **kw)
        if variant == "direct" and b'"fail"' in body:
            return Answer(200, answer.body)  # a direct API that swallows poison requests
        return answer

    monkeypatch.setattr(StageClient, "post", post)
    monkeypatch.setattr(checks, "OUTAGE_MS", 1000)
    code = main(["verify", "--endpoints", str(local_stage.endpoints_path)])
    output = capsys.readouterr().out
    assert code == 1
    failed = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "direct: poison -> 400" in failed[0], output


def test_without_a_stream_function_the_redelivery_check_is_skipped(local_stage: LocalStage):
    from stack.endpoints import read_endpoints

    client = StageClient(read_endpoints(local_stage.endpoints_path))
    rows = behaviour_checks(client, stream_invoker=None, timeout_s=30)
    skipped = [row for row in rows if row.passed is None]
    assert [row.name for row in skipped] == [
        "storage-first: a redelivered record is not processed twice"
    ]
    assert all(row.passed for row in rows if row.passed is not None)
