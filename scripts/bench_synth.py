"""Wall time of synthesizing both variants' stacks (cdk-nag checks included).

Two figures, each the median of ``--repeat`` runs:

- ``command``: ``asyncbench synth`` in a fresh process, what a user waits for (Python and jsii
  start-up, CDK import, synthesis, asset copy, cdk-nag);
- ``in-process``: :func:`stack.app.synthesize` again in an already warm process (synthesis only).

Usage: ``.venv/bin/python scripts/bench_synth.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(outdir: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one ``asyncbench synth``; CPU (node + Python) resists a busy machine."""
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "asyncbench.cli", "synth", "--out", str(outdir)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start, _children_cpu_s() - cpu_before


def time_in_process(outdir: Path) -> float:
    from stack.app import synthesize
    from stack.config import StackConfig

    start = time.perf_counter()
    synthesize(StackConfig(), outdir)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as work:
        root = Path(work)
        timed = [time_command(root / f"command-{run}") for run in range(args.repeat)]
        command = [wall for wall, _ in timed]
        command_cpu = [cpu for _, cpu in timed]
        time_in_process(root / "warm-up")  # jsii start-up and CDK import, not measured
        in_process = [time_in_process(root / f"in-process-{run}") for run in range(args.repeat)]
    print(f"load average before: {load_before:.1f} on {os.cpu_count()} CPUs")
    figures = (("command", command), ("command CPU", command_cpu), ("in-process", in_process))
    for name, samples in figures:
        runs = ", ".join(f"{sample:.2f}" for sample in samples)
        print(f"{name:>11}: median {statistics.median(samples):.2f} s  (runs: {runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
