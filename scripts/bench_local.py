"""Benchmark of the whole local stage as a user runs it (issue 3, "Speed and memory").

Starts ``asyncbench local up --detach`` in a temporary state dir, drives both variants with
open-loop load (fixed arrival rates, from this process), samples the resident memory of every
process of the stage (the stage process, DynamoDB Local's JVM, the Lambda environments) with
psutil, and prints the figures; then ``local down``.

Figures are functions registered with :func:`figure`; each gets the :class:`Bench` (endpoints,
stage pid, the load results) and returns ``{name: value}``. The gateway and event-source-mapping
engineers' detailed benchmarks live in ``scripts/bench_gateway.py`` and
``scripts/bench_stream_lag.py``; add an end-to-end figure here with ``@figure("name")``.

    .venv/bin/python scripts/bench_local.py [--rate 200] [--direct-rate 50] [--duration 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import psutil

from asyncbench.paths import PROJECT_ROOT
from stack.endpoints import Endpoints, read_endpoints
from stack.local.dynamodb.dynamodb_local import client_kwargs

Figures = dict[str, float | int | str]
FIGURES: dict[str, Callable[[Bench], Figures]] = {}


def figure(name: str) -> Callable[[Callable[[Bench], Figures]], Callable[[Bench], Figures]]:
    """Register a figure function (a hook for other benchmarks of the local stage)."""

    def register(function: Callable[[Bench], Figures]) -> Callable[[Bench], Figures]:
        FIGURES[name] = function
        return function

    return register


@dataclass
class LoadResult:
    variant: str
    rate: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    late: int = 0  # requests sent more than 10 ms after their intended time


@dataclass
class Bench:
    endpoints: Endpoints
    stage_pid: int
    run_id: str
    duration_s: float
    loads: dict[str, LoadResult] = field(default_factory=dict)
    memory_samples_mb: list[dict[str, float]] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


# ------------------------------------------------------------------------------ load
def drive(base_url: str, variant: str, rate: float, duration_s: float, run_id: str) -> LoadResult:
    """Open-loop POST /requests at ``rate`` per second; one keep-alive connection per thread."""
    result = LoadResult(variant=variant, rate=rate)
    if rate <= 0:
        return result
    total = int(rate * duration_s)
    start = time.monotonic() + 0.2
    lock = threading.Lock()
    next_index = [0]
    url = urlsplit(base_url)
    body = json.dumps({"work_ms": 0, "payload": "bench"}).encode()

    def worker() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= total:
                break
            intended = start + index / rate
            delay = intended - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            try:
                connection.request(
                    "POST",
                    url.path + "/requests",
                    body=body,
                    headers={"Content-Type": "application/json", "X-Run-Id": run_id},
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
                status = 0
            done = time.monotonic()
            with lock:
                result.latencies_ms.append((done - sent) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.late += sent - intended > 0.010
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def stage_processes(stage_pid: int) -> list[psutil.Process]:
    root = psutil.Process(stage_pid)
    return [root, *root.children(recursive=True)]


def sample_memory(stage_pid: int) -> dict[str, float]:
    """Resident MB of the stage, by kind of process, and in total (RSS counts pages the
    environments share with their fork server once per process: an upper bound)."""
    sample = {"stage_process": 0.0, "dynamodb_local": 0.0, "lambda_environments": 0.0}
    pss_mb = 0.0
    for process in stage_processes(stage_pid):
        try:
            rss_mb = process.memory_info().rss / 2**20
            # PSS splits shared pages among the processes sharing them: the honest total.
            pss_mb += getattr(process.memory_full_info(), "pss", 0) / 2**20
            command = " ".join(process.cmdline())
            parent = process.ppid()
        except psutil.NoSuchProcess:
            continue
        if "DynamoDBLocal.jar" in command:
            sample["dynamodb_local"] += rss_mb
        elif parent != stage_pid:  # forked by the stage's fork server: an environment
            sample["lambda_environments"] += rss_mb
        else:  # the stage itself, its fork server and multiprocessing's resource tracker
            sample["stage_process"] += rss_mb
    sample["total"] = sum(sample.values())
    sample["total_pss"] = pss_mb
    return sample


# ---------------------------------------------------------------------------- figures
@figure("memory")
def memory_figures(bench: Bench) -> Figures:
    peak = max(bench.memory_samples_mb, key=lambda sample: sample["total"])
    return {
        "peak_resident_total_mb": round(peak["total"], 1),
        "peak_proportional_total_mb": round(
            max(sample["total_pss"] for sample in bench.memory_samples_mb), 1
        ),
        "at_peak_dynamodb_local_mb": round(peak["dynamodb_local"], 1),
        "at_peak_stage_process_mb": round(peak["stage_process"], 1),
        "at_peak_lambda_environments_mb": round(peak["lambda_environments"], 1),
        "budget_mb": 1536,
        "within_budget": str(peak["total"] < 1536),
    }


@figure("lambda")
def lambda_figures(bench: Bench) -> Figures:
    """What the local Lambda runtime recorded (the stage's metrics log)."""
    path = Path(bench.endpoints.extra["metrics_log"])
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    figures: Figures = {}
    for variant in ("direct", "storage_first"):
        mine = [row for row in rows if row["variant"] == variant]
        inits = [row["value"] for row in mine if row["metric"] == "InitDuration"]
        durations = [row["value"] for row in mine if row["metric"] == "Duration"]
        figures[f"{variant}_cold_starts"] = len(inits)
        figures[f"{variant}_init_p50_ms"] = round(percentile(inits, 50), 1)
        figures[f"{variant}_duration_p50_ms"] = round(percentile(durations, 50), 1)
        figures[f"{variant}_throttles"] = sum(row["metric"] == "Throttles" for row in mine)
        figures[f"{variant}_max_concurrent"] = max(
            (row["value"] for row in mine if row["metric"] == "ConcurrentExecutions"), default=0
        )
    return figures


@figure("client_latency")
def latency_figures(bench: Bench) -> Figures:
    figures: Figures = {}
    for variant, load in bench.loads.items():
        sent = len(load.latencies_ms)
        figures[f"{variant}_sent"] = sent
        figures[f"{variant}_achieved_rate_per_s"] = round(sent / bench.duration_s, 1)
        figures[f"{variant}_statuses"] = json.dumps(load.statuses, sort_keys=True)
        figures[f"{variant}_p50_ms"] = round(percentile(load.latencies_ms, 50), 2)
        figures[f"{variant}_p99_ms"] = round(percentile(load.latencies_ms, 99), 2)
        figures[f"{variant}_sent_late"] = load.late
    return figures


@figure("stream_lag")
def lag_figures(bench: Bench) -> Figures:
    """accepted -> processing started, on the server clock, from the stored items."""
    table = bench.endpoints.variants["storage_first"].table
    dynamodb_endpoint = bench.endpoints.dynamodb_endpoint
    assert dynamodb_endpoint is not None
    client = boto3.client("dynamodb", **client_kwargs(dynamodb_endpoint))
    expected = sum(bench.loads["storage_first"].statuses.get(code, 0) for code in (200, 202))
    deadline = time.monotonic() + 60
    while True:
        items = [
            item
            for page in client.get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]
            if item.get("run_id", {}).get("S") == bench.run_id
        ]
        done = [item for item in items if item["status"]["S"] != "PENDING"]
        if len(done) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rows = sorted(
        (int(item["accepted_at_ms"]["N"]), int(item["started_at_ms"]["N"]))
        for item in done
        if "started_at_ms" in item
    )
    lags = [started - accepted for accepted, started in rows]
    third = max(1, len(lags) // 3)
    return {
        "accepted": expected,
        "processed": len(done),
        "lag_p50_ms": round(percentile(lags, 50), 1),
        "lag_p90_ms": round(percentile(lags, 90), 1),
        "lag_p99_ms": round(percentile(lags, 99), 1),
        "lag_p50_first_third_ms": round(statistics.median(lags[:third]), 1) if lags else "n/a",
        "lag_p50_last_third_ms": round(statistics.median(lags[-third:]), 1) if lags else "n/a",
    }


# ------------------------------------------------------------------------------- main
def local(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.local.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "ASYNCBENCH_STATE_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200, help="storage-first requests/s")
    parser.add_argument("--direct-rate", type=float, default=50, help="direct requests/s")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument("--only", nargs="*", choices=sorted(FIGURES), help="figures to print")
    args = parser.parse_args(argv)

    state_dir = Path(tempfile.mkdtemp(prefix="asyncbench-bench-"))
    started = time.monotonic()
    up = local(state_dir, "up", "--detach")
    if up.returncode != 0:
        print(up.stdout + up.stderr, file=sys.stderr)
        return 1
    print(f"stage up in {time.monotonic() - started:.1f} s", flush=True)
    try:
        endpoints = read_endpoints(Path(up.stdout.strip().splitlines()[-1]))
        stage_pid = json.loads((state_dir / "local-stage.json").read_text())["pid"]
        bench = Bench(endpoints, stage_pid, run_id=f"bench-{uuid.uuid4().hex[:8]}",
                      duration_s=args.duration)  # fmt: skip
        bench.memory_samples_mb.append(sample_memory(stage_pid))
        stop_sampling = threading.Event()

        def sampler() -> None:
            while not stop_sampling.wait(0.5):
                bench.memory_samples_mb.append(sample_memory(stage_pid))

        sampling = threading.Thread(target=sampler, daemon=True)
        sampling.start()
        rates = {"storage_first": args.rate, "direct": args.direct_rate}
        drivers = [
            threading.Thread(
                target=lambda v=variant, r=rate: bench.loads.__setitem__(
                    v, drive(endpoints.variants[v].base_url, v, r, args.duration, bench.run_id)
                )
            )
            for variant, rate in rates.items()
        ]
        for thread in drivers:
            thread.start()
        for thread in drivers:
            thread.join()
        stop_sampling.set()
        sampling.join()
        print(f"idle resident total before load: {bench.memory_samples_mb[0]['total']:.1f} MB")
        for name in args.only or FIGURES:
            for key, value in FIGURES[name](bench).items():
                print(f"{name}.{key} = {value}")
    finally:
        down = local(state_dir, "down")
        print(down.stdout.strip().splitlines()[-1] if down.stdout.strip() else down.stderr)
        print(f"metrics log and stage logs kept in {state_dir / 'local'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
