"""Benchmark: `asyncbench report` of a synthetic run (default 1,000,000 client rows and about
as many server rows). Targets (issue 14, a 2-core machine, median of 3): 1M + 1M rows <= 5 s
and <= 500 MB peak; 20M + 20M rows <= 90 s and <= 2 GB peak.

    .venv/bin/python scripts/bench_analysis.py [--rows N] [--keep DIR] [--repeat 3]
        [--memory-limit 1GB]

The run folder is generated once (``--keep DIR`` keeps it and reuses it next time), with
request ids as long as API Gateway's (``--request-ids short`` for build_run's), part by
part with bounded memory (``analysis.synthetic_parts``: parts of at most 1,000,000 requests),
in a child process whose wall time and peak resident memory are printed. Each report runs in a
fresh process, exactly what `asyncbench report RUN_DIR` does (load, analyse, render, write); its
wall time, CPU time (user + system) and peak resident memory are those of that whole process,
read from the kernel when it exits (wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.synthetic import SyntheticSpec
from analysis.synthetic_parts import REQUEST_ID_STYLES, write_run_in_parts

TARGETS = {1_000_000: (5.0, 500.0), 20_000_000: (90.0, 2048.0)}  # rows: (wall s, peak MB)


def _generate(rows: int, run_dir: Path, request_ids: str) -> None:
    written = write_run_in_parts(
        run_dir, _spec(rows), f"bench-{request_ids}-ids", request_ids=request_ids
    )
    print(
        f"generated {written.client_rows:,} client, {written.server_rows:,} server and "
        f"{written.metric_rows:,} metric rows in {written.parts:,} parts",
        flush=True,
    )


def _spec(rows: int) -> SyntheticSpec:
    trials, rate = 4, 100.0  # 2 repetitions x 2 variants
    duration_s = rows / trials / rate
    return SyntheticSpec(
        scenario="outage",
        stages=((duration_s, rate),),
        warmup_s=10.0,
        outage=(duration_s / 2, 60.0),
        drain_rate_per_s=400.0,
        poison_share=0.01,
        repetitions=2,
    )


def _measure(command: list[str], what: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one child process running ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL if what == "report" else None)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the {what} failed (exit {process.returncode})")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: KB


def _report_once(run_dir: Path, out: Path, memory_limit: str | None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one `asyncbench report` process."""
    command = [sys.executable, "-m", "asyncbench", "report", str(run_dir), "--out", str(out)]
    if memory_limit:
        command += ["--memory-limit", memory_limit]
    return _measure(command, "report")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="client rows in total")
    parser.add_argument("--keep", type=Path, help="write the run folder here (reused if there)")
    parser.add_argument("--repeat", type=int, default=3, help="reports to time (0: generate only)")
    parser.add_argument("--memory-limit", help="report --memory-limit (default: the engine's)")
    parser.add_argument(
        "--request-ids",
        choices=REQUEST_ID_STYLES,
        default="uuid",
        help="uuid: 36-character ids as API Gateway gives (default); short: build_run's",
    )
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:  # the child process that writes the run folder
        _generate(args.rows, args.keep, args.request_ids)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.keep or Path(scratch) / "bench-run"
        if (run_dir / "manifest.json").is_file():
            run_id = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["run_id"]
            print(f"reusing {run_dir} (run id {run_id})", flush=True)
        else:
            command = [sys.executable, __file__, "--generate-only", "--rows", str(args.rows)]
            command += ["--request-ids", args.request_ids]
            wall, cpu, peak = _measure([*command, "--keep", str(run_dir)], "generation")
            size = sum(path.stat().st_size for path in run_dir.rglob("*") if path.is_file())
            print(
                f"generate+write: {wall:.1f} s wall, {cpu:.1f} s CPU, {peak:,.0f} MB peak, "
                f"{size / 2**20:,.0f} MB on disk",
                flush=True,
            )
        results = []
        for number in range(args.repeat):
            wall, cpu, peak = _report_once(run_dir, Path(scratch) / "out", args.memory_limit)
            print(f"report {number + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU, {peak:,.0f} MB peak")
            results.append((wall, cpu, peak))
    if not results:  # --repeat 0: generate only
        return 0
    wall = statistics.median(result[0] for result in results)
    cpu = statistics.median(result[1] for result in results)
    peak = statistics.median(result[2] for result in results)
    # CPU time too: on a shared machine, wall time includes waiting for other processes.
    print(
        f"rows {args.rows:,}: median of {len(results)}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"{peak:,.0f} MB peak resident (the whole report process)"
    )
    target = TARGETS.get(args.rows)
    if target is None:
        return 0
    print(f"target: <= {target[0]:.0f} s wall, <= {target[1]:,.0f} MB peak")
    return 0 if wall <= target[0] and peak <= target[1] else 1


if __name__ == "__main__":
    sys.exit(main())
