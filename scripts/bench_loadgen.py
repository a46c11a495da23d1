"""Benchmark the load generator itself and print its figures.

    .venv/bin/python scripts/bench_loadgen.py [--seconds 8] [--only overhead|pacing|scaling]

Against one fast local HTTP server (asyncio, in its own process, answering 202 with a request
id), it measures:

(a) recorder overhead: the highest rate one Locust process reaches with the recorder on, divided
    by the rate it reaches with it off, in the same run (target >= 0.95);
(b) pacing: the achieved send rate at a target of 500 requests/s (target: within 2%);
(c) scaling: the highest rate of 2 load-generator processes over that of 1 (target >= 1.8x).

"Highest rate" = requests completed / time, offering far more than one process can send (the
open-loop pacer then sends as fast as its users can) and stopping the trial after --seconds.
The server shares the
machine's cores with the load generator, so on a 2-core machine (c) is bounded by the server's
own share of the CPU: the figure is printed with the core count and the server's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from loadtests.driver import TrialLoadResult, TrialPlan, TrialProgress, drive_trial
from loadtests.scenario import Scenario, Stage
from reports.schema import CLIENT, read_table

MAX_OFFERED_PER_S = 20000.0
PACING_TARGET_PER_S = 500.0


# --- the fast server (runs in a child process: `bench_loadgen.py serve`) ----------------------


class _Api(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: every complete request gets a 202 with an id."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            body = b'{"requestId":"' + uuid.uuid4().hex.encode() + b'","status":"PENDING"}'
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Api, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- measurements -----------------------------------------------------------------------------


def _plan(base_url: str, run_dir: Path, rate: float, seconds: float, trial: int) -> TrialPlan:
    scenario = Scenario(
        name="bench",
        description="load-generator benchmark",
        stages=(Stage(seconds, rate),),
        warmup_s=0.0,
        request_timeout_s=10.0,
    )
    return TrialPlan(
        run_id="bench",
        trial=trial,
        repetition=1,
        variant="storage_first",
        base_url=base_url,
        scenario=scenario,
        run_dir=run_dir,
        started_at_ms=time.time() * 1000.0 + 1500.0,
        seed=1,
    )


def _rate(result: TrialLoadResult) -> float:
    """Completed requests per second from time zero until the load (and its drain) ended."""
    return result.total_counted / ((result.ended_at_ms - result.started_at_ms) / 1000.0)


def _sent_rate(run_dir: Path, trial: int, result: TrialLoadResult, seconds: float) -> float:
    rows = read_table(run_dir, CLIENT)
    rows = rows[rows["trial"] == trial]
    sent_s = (rows["sent_at_ms"] - result.started_at_ms) / 1000.0
    return float(((sent_s >= 0) & (sent_s < seconds)).sum() / seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--seconds", type=float, default=8.0, help="load per measurement")
    parser.add_argument("--only", choices=["overhead", "pacing", "scaling"])
    args = parser.parse_args()
    if args.role == "serve":
        asyncio.run(_serve())
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/storage-first"
        with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as folder:
            return _bench(base_url, Path(folder), args.seconds, args.only, server.pid)
    finally:
        server.terminate()
        server.wait()


def _server_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bench(base_url: str, run_dir: Path, seconds: float, only: str | None, server: int) -> int:
    print(f"cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}  "
          f"seconds per measurement: {seconds:g}")  # fmt: skip
    trial = 0

    def run(rate: float, *, processes: int = 1, record: bool = True) -> tuple[float, float, float]:
        """(requests/s, server CPU cores, load-generator CPU microseconds per request)."""
        nonlocal trial
        trial += 1
        cpu_before = _server_cpu_s(server)
        # Offer far more than can be sent, for longer than needed, and stop after `seconds`:
        # the generator then sends as fast as it can for a known window.
        plan = _plan(base_url, run_dir, rate, seconds * 10, trial)
        stop = threading.Event()

        def stop_after_window(progress: TrialProgress) -> None:
            if progress.elapsed_s >= seconds:
                stop.set()

        result = drive_trial(
            plan, processes=processes, record=record, progress=stop_after_window, stop=stop
        )
        if record:
            rows = read_table(run_dir, CLIENT)
            outcomes = rows.loc[rows["trial"] == trial, "outcome"].value_counts().to_dict()
            if set(outcomes) != {"accepted"}:
                print(f"    trial {trial}: outcomes {outcomes}")
        window_s = (result.ended_at_ms - result.started_at_ms) / 1000.0
        server_cpu = (_server_cpu_s(server) - cpu_before) / window_s
        loadgen_us = result.cpu_s / max(result.total_counted, 1) * 1e6
        return _rate(result), server_cpu, loadgen_us

    if only in (None, "overhead"):
        # Alternate the two settings so drift on a shared machine hits both alike.
        with_recorder, without = [], []
        for _ in range(3):
            without.append(run(MAX_OFFERED_PER_S, record=False))
            with_recorder.append(run(MAX_OFFERED_PER_S, record=True))
        best_with = max(rate for rate, _, _ in with_recorder)
        best_without = max(rate for rate, _, _ in without)
        cost_with = min(cost for _, _, cost in with_recorder)
        cost_without = min(cost for _, _, cost in without)
        print(f"    rates with recorder {[round(r[0]) for r in with_recorder]}, "
              f"without {[round(r[0]) for r in without]}")  # fmt: skip
        print(f"(a) recorder overhead: with {best_with:.0f}/s, without {best_without:.0f}/s -> "
              f"ratio {best_with / best_without:.3f} (target >= 0.95); CPU per request "
              f"{cost_with:.0f} us vs {cost_without:.0f} us -> ratio "
              f"{cost_without / cost_with:.3f}")  # fmt: skip
    if only in (None, "pacing"):
        trial += 1
        plan = _plan(base_url, run_dir, PACING_TARGET_PER_S, seconds, trial)
        result = drive_trial(plan)
        achieved = _sent_rate(run_dir, trial, result, seconds)
        error = achieved / PACING_TARGET_PER_S - 1
        rows = read_table(run_dir, CLIENT)
        rows = rows[rows["trial"] == trial]
        lag = rows["sent_at_ms"] - rows["intended_at_ms"]
        per_second = ((rows["sent_at_ms"] - result.started_at_ms) // 1000).value_counts()
        busiest = per_second[per_second.index < seconds]
        print(f"(b) pacing at {PACING_TARGET_PER_S:.0f}/s: achieved {achieved:.1f}/s "
              f"({error:+.2%}; target within 2%); per-second min/max {busiest.min()}/"
              f"{busiest.max()}; send lag p50 {lag.quantile(0.5):.1f} ms, p99 "
              f"{lag.quantile(0.99):.1f} ms; late sends {result.late_sends}")  # fmt: skip
    if only in (None, "scaling"):
        one, one_server, one_cost = run(MAX_OFFERED_PER_S, processes=1)
        two, two_server, two_cost = run(MAX_OFFERED_PER_S, processes=2)
        print(f"(c) scaling: 1 process {one:.0f}/s, 2 processes {two:.0f}/s -> "
              f"{two / one:.2f}x (target >= 1.8x); server CPU {one_server:.2f} / "
              f"{two_server:.2f} cores; load-generator CPU per request {one_cost:.0f} / "
              f"{two_cost:.0f} us (master included; during the load)")  # fmt: skip
        if two_cost > 0:
            print(f"    with a free core per process, 2 processes would deliver "
                  f"{2 * one_cost / two_cost:.2f}x (CPU-bound projection)")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the cores)")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"load-generator CPU time (children): {usage.ru_utime + usage.ru_stime:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
