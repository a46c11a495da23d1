"""Benchmark: analysis and report of a synthetic run of 1,000,000 client rows and about
1,000,000 server rows (targets: <= 60 s wall time, <= 2 GB peak resident memory).

    .venv/bin/python scripts/bench_analysis.py [--rows N] [--keep DIR]

Generation and writing of the run folder are timed apart; the figure that counts is "report",
which is exactly what `asyncbench report RUN_DIR` does (load, analyse, render, write).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

from analysis.cli import make_report
from analysis.synthetic import SyntheticSpec, build_run, write_run

WALL_TARGET_S = 60.0
MEMORY_TARGET_MB = 2048.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _generate(spec: SyntheticSpec, run_dir: Path) -> None:
    run = build_run(spec, "bench")
    write_run(run_dir, run)
    print(
        f"generated {len(run.client):,} client, {len(run.server):,} server and "
        f"{len(run.metrics):,} metric rows",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="client rows in total")
    parser.add_argument("--keep", type=Path, help="write the run folder here and keep it")
    args = parser.parse_args()
    trials, rate = 4, 100.0  # 2 repetitions x 2 variants
    duration_s = args.rows / trials / rate
    spec = SyntheticSpec(
        scenario="outage",
        stages=((duration_s, rate),),
        warmup_s=10.0,
        outage=(duration_s / 2, 60.0),
        drain_rate_per_s=400.0,
        poison_share=0.01,
        repetitions=2,
    )
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.keep or Path(scratch) / "bench-run"
        cpu_started = time.process_time()
        # Generated in a child process so this process's peak memory is the report's alone.
        started = time.perf_counter()
        child = multiprocessing.get_context("spawn").Process(target=_generate, args=(spec, run_dir))
        child.start()
        child.join()
        if child.exitcode != 0:
            print("generating the synthetic run failed", file=sys.stderr)
            return 1
        print(f"generate+write: {time.perf_counter() - started:.1f} s", flush=True)
        rss_before = _peak_rss_mb()
        started = time.perf_counter()
        index = make_report([run_dir], progress=lambda message: print(f"  {message}", flush=True))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    peak = _peak_rss_mb()
    # CPU time too: on a shared machine, wall time includes waiting for other processes.
    print(f"report: {elapsed:.1f} s wall, {cpu:.1f} s CPU (target <= {WALL_TARGET_S:.0f} s wall)")
    print(
        f"peak resident memory: {peak:,.0f} MB (target <= {MEMORY_TARGET_MB:,.0f} MB; "
        f"{rss_before:,.0f} MB before the report: interpreter and imports)"
    )
    print(index)
    ok = elapsed <= WALL_TARGET_S and peak <= MEMORY_TARGET_MB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
