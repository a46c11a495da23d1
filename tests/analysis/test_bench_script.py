"""The benchmark script keeps working (a small size; the full size is run by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_analysis.py"


@pytest.mark.slow
def test_bench_script_reports_its_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "8000", "--keep", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("report: ") and "s wall" in line for line in lines)
    assert any(line.startswith("peak resident memory: ") for line in lines)
    assert lines[-1] == str(tmp_path / "run" / "index.html")
