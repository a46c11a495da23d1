"""Benchmark the load generator itself and print its figures.

    .venv/bin/python scripts/bench_loadgen.py [--seconds 8] [--pairs 3]
        [--only overhead|pacing|scaling]

Against one fast local HTTP server (a single epoll loop in its own process, answering every
request with the same 202), it measures:

(a) recorder overhead: the highest rate one Locust process reaches with the recorder on, divided
    by the rate it reaches with it off, in the same run (target >= 0.95);
(b) pacing: the achieved send rate at a target of 500 requests/s (target: within 2%);
(c) scaling: the highest rate of 2 load-generator processes over that of 1 (target >= 1.8x).

"Highest rate" = requests completed / time, offering far more than one process can send (the
open-loop pacer then sends as fast as its users can) and stopping the trial after --seconds.
Each ratio comes from --pairs alternating pairs of measurements (ABBA..., so a drift in the
machine's load hits both settings alike); it prints the best-rate ratio, the median of the
pairs' ratios and the CPU time per request, which does not depend on how busy the machine is.
The server shares the machine's cores with the load generator, so on a 2-core machine (c) is
bounded by the server's own share of the CPU: the bound is printed beside the figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from loadtests.driver import TrialLoadResult, TrialPlan, TrialProgress, drive_trial
from loadtests.scenario import Scenario, Stage
from reports.schema import CLIENT, read_table

MAX_OFFERED_PER_S = 20000.0
PACING_TARGET_PER_S = 500.0


# --- the fast server (runs in a child process: `bench_loadgen.py serve`) ----------------------

_BODY = b'{"requestId":"00000000-0000-4000-8000-000000000000","status":"PENDING"}'
RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


def _complete_requests(buffer: bytes) -> tuple[int, bytes]:
    """How many whole HTTP/1.1 requests ``buffer`` starts with, and the bytes left over."""
    count = 0
    while (head_end := buffer.find(b"\r\n\r\n")) >= 0:
        head = buffer[:head_end].lower()
        marker = head.find(b"content-length:")
        length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
        end = head_end + 4 + length
        if len(buffer) < end:
            break
        buffer = buffer[end:]
        count += 1
    return count, buffer


def _serve() -> None:
    """A keep-alive HTTP responder on one epoll loop: every request gets the same 202.

    As cheap as Python gets (about 20 us of CPU per request, against about 40 us for an asyncio
    server): the load generator and this server share the machine's cores, and on 2 cores the
    server's share bounds the two-process figure.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    connections: dict[int, socket.socket] = {}
    pending: dict[int, bytes] = {}
    while True:
        for fd, _events in poller.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        connection, _address = listener.accept()
                    except BlockingIOError:
                        break
                    connection.setblocking(False)
                    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connections[connection.fileno()] = connection
                    pending[connection.fileno()] = b""
                    poller.register(connection.fileno(), select.EPOLLIN)
                continue
            connection = connections[fd]
            try:
                data = connection.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                poller.unregister(fd)
                connection.close()
                del connections[fd], pending[fd]
                continue
            count, pending[fd] = _complete_requests(pending[fd] + data)
            if count:
                try:
                    connection.sendall(RESPONSE * count)
                except (BlockingIOError, ConnectionError):  # a client gone or not reading
                    poller.unregister(fd)
                    connection.close()
                    del connections[fd], pending[fd]


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
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per ratio")
    parser.add_argument("--only", choices=["overhead", "pacing", "scaling"])
    args = parser.parse_args()
    if args.role == "serve":
        _serve()
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/storage-first"
        with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as folder:
            bench = _Bench(base_url, Path(folder), args.seconds, server.pid)
            return bench.main(args.only, args.pairs)
    finally:
        server.terminate()
        server.wait()


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Measure:
    rate: float
    """Completed requests per second."""
    loadgen_us: float
    """Load-generator CPU microseconds per request (all its processes, during the load)."""
    server_us: float
    """The server's CPU microseconds per request."""


class _Bench:
    def __init__(self, base_url: str, run_dir: Path, seconds: float, server: int) -> None:
        self.base_url, self.run_dir, self.seconds, self.server = base_url, run_dir, seconds, server
        self.trial = 0

    def main(self, only: str | None, pairs: int) -> int:
        print(f"cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}  "
              f"seconds per measurement: {self.seconds:g}  pairs: {pairs}")  # fmt: skip
        if only in (None, "overhead"):
            self.overhead(pairs)
        if only in (None, "pacing"):
            self.pacing()
        if only in (None, "scaling"):
            self.scaling(pairs)
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the "
              "cores)")  # fmt: skip
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"load-generator CPU time (children): {usage.ru_utime + usage.ru_stime:.1f} s")
        return 0

    def measure(self, *, processes: int = 1, record: bool = True) -> _Measure:
        """One process (or a master and ``processes`` workers) as fast as it can send."""
        self.trial += 1
        # Offer far more than can be sent, for longer than needed, and stop after `seconds`:
        # the generator then sends as fast as it can for a known window.
        plan = _plan(self.base_url, self.run_dir, MAX_OFFERED_PER_S, self.seconds * 10, self.trial)
        stop = threading.Event()

        def stop_after_window(progress: TrialProgress) -> None:
            if progress.elapsed_s >= self.seconds:
                stop.set()

        server_before = _cpu_s(self.server)
        result = drive_trial(
            plan, processes=processes, record=record, progress=stop_after_window, stop=stop
        )
        server_cpu = _cpu_s(self.server) - server_before
        if record:
            rows = read_table(self.run_dir, CLIENT)
            outcomes = rows.loc[rows["trial"] == self.trial, "outcome"].value_counts().to_dict()
            if set(outcomes) != {"accepted"}:
                print(f"    trial {self.trial}: outcomes {outcomes}")
        count = max(result.total_counted, 1)
        return _Measure(_rate(result), result.cpu_s / count * 1e6, server_cpu / count * 1e6)

    def compare(
        self, pairs: int, first: dict[str, Any], second: dict[str, Any]
    ) -> tuple[list[_Measure], list[_Measure]]:
        """``pairs`` measurements of each setting, alternating which goes first (ABBA...), so a
        drift of the machine's load hits both alike."""
        firsts: list[_Measure] = []
        seconds: list[_Measure] = []
        for pair in range(pairs):
            if pair % 2 == 0:
                firsts.append(self.measure(**first))
                seconds.append(self.measure(**second))
            else:
                seconds.append(self.measure(**second))
                firsts.append(self.measure(**first))
        return firsts, seconds

    def overhead(self, pairs: int) -> None:
        with_recorder, without = self.compare(pairs, {"record": True}, {"record": False})
        best = max(m.rate for m in with_recorder) / max(m.rate for m in without)
        paired = median(a.rate / b.rate for a, b in zip(with_recorder, without, strict=True))
        cost_with = median(m.loadgen_us for m in with_recorder)
        cost_without = median(m.loadgen_us for m in without)
        print(f"    rates with recorder {[round(m.rate) for m in with_recorder]}, "
              f"without {[round(m.rate) for m in without]}")  # fmt: skip
        print(f"(a) recorder overhead: max requests/s with / without {best:.3f} (target >= 0.95); "
              f"median of the {pairs} pairs' ratios {paired:.3f}; CPU per request "
              f"{cost_with:.0f} us with vs {cost_without:.0f} us without -> ratio "
              f"{cost_without / cost_with:.3f}")  # fmt: skip

    def pacing(self) -> None:
        self.trial += 1
        seconds = self.seconds
        plan = _plan(self.base_url, self.run_dir, PACING_TARGET_PER_S, seconds, self.trial)
        result = drive_trial(plan)
        achieved = _sent_rate(self.run_dir, self.trial, result, seconds)
        error = achieved / PACING_TARGET_PER_S - 1
        rows = read_table(self.run_dir, CLIENT)
        rows = rows[rows["trial"] == self.trial]
        lag = rows["sent_at_ms"] - rows["intended_at_ms"]
        per_second = ((rows["sent_at_ms"] - result.started_at_ms) // 1000).value_counts()
        busiest = per_second[per_second.index < seconds]
        print(f"(b) pacing at {PACING_TARGET_PER_S:.0f}/s: achieved {achieved:.1f}/s "
              f"({error:+.2%}; target within 2%); per-second min/max {busiest.min()}/"
              f"{busiest.max()}; send lag p50 {lag.quantile(0.5):.1f} ms, p99 "
              f"{lag.quantile(0.99):.1f} ms; late sends {result.late_sends}")  # fmt: skip

    def scaling(self, pairs: int) -> None:
        ones, twos = self.compare(pairs, {"processes": 1}, {"processes": 2})
        one, two = max(m.rate for m in ones), max(m.rate for m in twos)
        paired = median(b.rate / a.rate for a, b in zip(ones, twos, strict=True))
        one_cost = median(m.loadgen_us for m in ones)
        two_cost = median(m.loadgen_us for m in twos)
        server_cost = median(m.server_us for m in ones + twos)
        cores = os.cpu_count() or 1
        print(f"    rates 1 process {[round(m.rate) for m in ones]}, "
              f"2 processes {[round(m.rate) for m in twos]}")  # fmt: skip
        print(f"(c) scaling: max requests/s 1 process {one:.0f}/s, 2 processes {two:.0f}/s -> "
              f"{two / one:.2f}x (target >= 1.8x); median of the {pairs} pairs' ratios "
              f"{paired:.2f}x; CPU per request: load generator {one_cost:.0f} / {two_cost:.0f} us "
              f"(master included), server {server_cost:.0f} us")  # fmt: skip
        # What the cores allow: 1 process is bound by its own core; 2 processes and the server
        # share all of them, so on 2 cores the server's CPU is taken from the second process.
        bound = min(2.0 * one_cost / two_cost, cores * one_cost / (two_cost + server_cost))
        print(f"    with a free core per process, 2 processes would deliver "
              f"{2 * one_cost / two_cost:.2f}x (CPU-bound projection); on these {cores} cores "
              f"shared with the server, at most {bound:.2f}x")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
