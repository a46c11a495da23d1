"""One synthesis per test session (jsii start-up and synthesis take seconds), through the CLI.

``synthesized`` runs ``asyncbench synth --out DIR --config FILE`` in-process with a config in
which every setting differs from its default, so a template property that ignores the config
fails a test. Templates are read from the files the command wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from asyncbench.cli import main
from stack.config import StackConfig

# Every field differs from StackConfig's default.
TEST_CONFIG = StackConfig(
    name_prefix="abtest",
    memory_mb=512,
    architecture="x86_64",
    timeout_s=20,
    reserved_concurrency=7,
    log_retention_days=30,
    batch_size=25,
    batching_window_s=2,
    retry_attempts=5,
    max_record_age_s=600,
    bisect_on_error=False,
    parallelization_factor=3,
    retry_backoff_base_ms=250,
    retry_backoff_max_ms=4000,
    ttl_seconds=3600,
    failure_ttl_seconds=7200,
)


@dataclass(frozen=True)
class SynthResult:
    outdir: Path
    stdout_lines: list[str]
    exit_code: int
    templates: dict[str, dict[str, Any]]
    """Template JSON per variant key ("direct", "storage_first")."""


@pytest.fixture(scope="session")
def test_config() -> StackConfig:
    return TEST_CONFIG


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    work = tmp_path_factory.mktemp("synth")
    config_file = work / "stack.json"
    config_file.write_text(json.dumps(TEST_CONFIG.to_dict()), encoding="utf-8")
    outdir = work / "cdk.out"
    # capsys is function-scoped; a session fixture captures the command's output itself.
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exit_code = main(["synth", "--out", str(outdir), "--config", str(config_file)])
    lines = buffer.getvalue().splitlines()
    templates = {
        variant: json.loads((outdir / f"abtest-{stage}.template.json").read_text("utf-8"))
        for variant, stage in (("direct", "direct"), ("storage_first", "storage-first"))
    }
    return SynthResult(outdir, lines, exit_code, templates)
