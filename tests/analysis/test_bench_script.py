"""The benchmark script keeps working (a small size; the full size is run by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_analysis.py"


@pytest.mark.slow
def test_bench_script_reports_its_figures(tmp_path: Path) -> None:
    command = [sys.executable, str(SCRIPT), "--rows", "8000", "--keep", str(tmp_path / "run")]
    runs = []
    for _ in range(2):  # the second reuses the kept folder
        result = subprocess.run(
            [*command, "--repeat", "1"], capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(result.stdout.strip().splitlines())
    first, second = runs
    generated = [line for line in first if line.startswith("generate+write: ")]
    assert len(generated) == 1 and "MB peak" in generated[0] and "MB on disk" in generated[0]
    assert any(line.startswith("generated 8,000 client, ") for line in first)
    assert second[0] == f"reusing {tmp_path / 'run'} (run id bench-uuid-ids)"
    assert (tmp_path / "run" / "manifest.json").is_file()
    for lines in runs:
        assert any(line.startswith("report 1: ") and "s CPU" in line for line in lines)
        assert lines[-1].startswith("rows 8,000: median of 1: ")
        assert "MB peak resident (the whole report process)" in lines[-1]
