"""Benchmark: wall time and peak memory of `asyncbench demo` (issue 6's figures).

Runs the demo as a user would, in its own state and reports folders, and samples the resident
memory of every process started since (the detached local stage is not a descendant of the
demo, so descendants alone would miss it). Run it on an otherwise quiet machine: the sum counts
every process started meanwhile.

    .venv/bin/python scripts/bench_demo.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time

import psutil


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="measure `demo --quick`")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="asyncbench-bench-demo-")
    env = {
        **os.environ,
        "ASYNCBENCH_STATE_DIR": os.path.join(scratch, "state"),
        "ASYNCBENCH_REPORTS_DIR": os.path.join(scratch, "reports"),
    }
    command = [sys.executable, "-m", "asyncbench", "demo", *(["--quick"] if args.quick else [])]
    started_wall, started = time.time(), time.monotonic()
    peak_bytes = 0
    with subprocess.Popen(command, env=env) as demo:
        while demo.poll() is None:
            total = 0
            for process in psutil.process_iter(["create_time"]):
                if process.info["create_time"] >= started_wall - 1:
                    # A process may end between listing and reading.
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
            peak_bytes = max(peak_bytes, total)
            time.sleep(0.5)
    wall_s = time.monotonic() - started
    print(
        f"demo{' --quick' if args.quick else ''}: exit {demo.returncode}, wall {wall_s:.0f} s "
        f"({wall_s / 60:.1f} min), peak resident of all processes it started "
        f"{peak_bytes / 2**20:.0f} MB; output in {scratch}"
    )
    return demo.returncode


if __name__ == "__main__":
    sys.exit(main())
