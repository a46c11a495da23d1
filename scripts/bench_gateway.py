"""Benchmark of the local gateway's storage-first accept path (issue 3, "Speed and memory").

Prints two figures, both measured in this one run against one DynamoDB Local:

1. Sustained rate through the gateway (POST /storage-first/requests, closed loop) against the
   raw PutItem rate to the same DynamoDB Local at the same concurrency, as a ratio
   (target >= 0.6). Raw and gateway phases alternate so both see the same table growth.
2. Accept latency at a fixed open-loop rate through the gateway (target p50 <= 5 ms at 200/s).

The gateway runs in its own process, as under ``asyncbench local up``; the load comes from
separate client processes so that no phase shares an interpreter lock with the server.

    .venv/bin/python scripts/bench_gateway.py [--concurrency 8] [--duration 8] [--rate 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from stack.config import StackConfig
from stack.local.apigateway.gateway import Gateway
from stack.local.dynamodb.dynamodb_local import LOCAL_CREDENTIALS, LOCAL_REGION, DynamoDBLocal
from stack.local.dynamodb.http_client import DynamoDbHttp
from stack.local.dynamodb.tables import create_tables

CLIENT_BODY = b'{"work_ms": 0, "payload": "bench"}'


class _NoFunction:
    name = "none"
    variant = "direct"

    def invoke(self, event: Any) -> Any:
        raise RuntimeError("the benchmark drives storage-first only")


def _serve_gateway(endpoint: str, tables: dict[str, str], pipe: Connection) -> None:
    gateway = Gateway(
        dynamodb_endpoint=endpoint,
        tables=tables,
        direct_function=_NoFunction(),  # type: ignore[arg-type]
        region=LOCAL_REGION,
        access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"],
    )
    gateway.start()
    pipe.send(gateway.url)
    pipe.recv()  # any message (or the parent's death) stops the server
    gateway.stop()


def _raw_item(table: str) -> bytes:
    """What put_request.vtl renders for CLIENT_BODY, with a fresh id (same size on the wire)."""
    item = {
        "TableName": table,
        "Item": {
            "id": {"S": str(uuid.uuid4())},
            "run_id": {"S": ""},
            "status": {"S": "PENDING"},
            "attempts": {"N": "0"},
            "duplicates": {"N": "0"},
            "accepted_at_ms": {"N": str(time.time_ns() // 1_000_000)},
            "request": {"S": CLIENT_BODY.decode()},
        },
        "ConditionExpression": "attribute_not_exists(id)",
    }
    return json.dumps(item).encode()


def _closed_loop_worker(
    target: str, url: str, table: str, threads: int, duration_s: float, pipe: Connection
) -> None:
    """One client process: ``threads`` keep-alive loops until the deadline; sends counts."""
    counts = {"ok": 0, "error": 0}
    lock = threading.Lock()
    start_at = pipe.recv()  # every process starts at the same instant
    deadline = start_at + duration_s

    def loop() -> None:
        ok = error = 0
        if target == "raw":
            client = DynamoDbHttp(
                url, region=LOCAL_REGION, access_key_id=LOCAL_CREDENTIALS["aws_access_key_id"]
            )
            while time.time() < start_at:
                time.sleep(0.001)
            while time.time() < deadline:
                status, _ = client.call("PutItem", _raw_item(table))
                ok, error = (ok + 1, error) if status == 200 else (ok, error + 1)
            client.close()
        else:
            parts = urlsplit(url)
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            while time.time() < start_at:
                time.sleep(0.001)
            while time.time() < deadline:
                connection.request("POST", "/storage-first/requests", body=CLIENT_BODY)
                response = connection.getresponse()
                response.read()
                ok, error = (ok + 1, error) if response.status == 202 else (ok, error + 1)
            connection.close()
        with lock:
            counts["ok"] += ok
            counts["error"] += error

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    pipe.send(counts)


def closed_loop_rate(
    target: str, url: str, table: str, processes: int, threads: int, duration_s: float
) -> tuple[float, int]:
    """Requests per second completed by processes x threads closed-loop clients."""
    pipes = []
    children = []
    for _ in range(processes):
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=_closed_loop_worker, args=(target, url, table, threads, duration_s, child)
        )
        process.start()
        pipes.append(parent)
        children.append(process)
    start_at = time.time() + 0.5
    for pipe in pipes:
        pipe.send(start_at)
    results = [pipe.recv() for pipe in pipes]
    for process in children:
        process.join()
    ok = sum(result["ok"] for result in results)
    errors = sum(result["error"] for result in results)
    return ok / duration_s, errors


def _open_loop_worker(url: str, rate: float, duration_s: float, pipe: Connection) -> None:
    """Open loop: request i is due at start + i/rate; latency measured from the actual send."""
    total = int(rate * duration_s)
    next_index = [0]
    lock = threading.Lock()
    latencies: list[float] = []
    late = [0]
    errors = [0]
    start = time.perf_counter() + 0.2
    parts = urlsplit(url)

    def loop() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= total:
                break
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.001:
                with lock:
                    late[0] += 1
            sent = time.perf_counter()
            connection.request("POST", "/storage-first/requests", body=CLIENT_BODY)
            response = connection.getresponse()
            response.read()
            elapsed_ms = (time.perf_counter() - sent) * 1000
            with lock:
                latencies.append(elapsed_ms)
                if response.status != 202:
                    errors[0] += 1
        connection.close()

    workers = [threading.Thread(target=loop) for _ in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    pipe.send({"latencies": latencies, "late": late[0], "errors": errors[0]})


def open_loop_latency(url: str, rate: float, duration_s: float) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_open_loop_worker, args=(url, rate, duration_s, child))
    process.start()
    result: dict[str, Any] = parent.recv()
    process.join()
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="keep-alive clients per process")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate phase")
    parser.add_argument("--rounds", type=int, default=3, help="raw/gateway phase pairs")
    parser.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds per target")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    parser.add_argument("--rate-duration", type=float, default=15.0, help="open-loop seconds")
    args = parser.parse_args(argv)
    concurrency = args.processes * args.threads

    with DynamoDBLocal() as dynamodb:
        tables = create_tables(dynamodb.endpoint_url, StackConfig(name_prefix="bench"))
        table_names = {variant: table.name for variant, table in tables.items()}
        parent, child = multiprocessing.Pipe()
        server = multiprocessing.Process(
            target=_serve_gateway, args=(dynamodb.endpoint_url, table_names, child), daemon=True
        )
        server.start()
        url = parent.recv()
        try:
            table = table_names["storage_first"]
            print(f"DynamoDB Local {dynamodb.endpoint_url}, gateway {url}")
            # DynamoDB Local's JIT needs a few thousand requests before its rate settles.
            print(f"warm-up ({concurrency} clients, {args.warmup:.0f} s each way)")
            for target, target_url in (("raw", dynamodb.endpoint_url), ("gateway", url)):
                closed_loop_rate(
                    target, target_url, table, args.processes, args.threads, args.warmup
                )
            raw_rates, gateway_rates = [], []
            for round_number in range(1, args.rounds + 1):
                raw, raw_errors = closed_loop_rate(
                    "raw", dynamodb.endpoint_url, table, args.processes, args.threads,
                    args.duration,
                )  # fmt: skip
                through, gateway_errors = closed_loop_rate(
                    "gateway", url, table, args.processes, args.threads, args.duration
                )
                raw_rates.append(raw)
                gateway_rates.append(through)
                print(
                    f"round {round_number}: raw PutItem {raw:7.0f}/s ({raw_errors} errors), "
                    f"gateway {through:7.0f}/s ({gateway_errors} errors), "
                    f"ratio {through / raw:.2f}"
                )
            ratios = [g / r for g, r in zip(gateway_rates, raw_rates, strict=True)]
            raw_mean = statistics.fmean(raw_rates)
            gateway_mean = statistics.fmean(gateway_rates)
            latency = open_loop_latency(url, args.rate, args.rate_duration)
        finally:
            parent.send("stop")
            server.join(timeout=10)
    values = latency["latencies"]
    print()
    print(f"concurrency {concurrency} ({args.processes} processes x {args.threads} keep-alive)")
    print(f"raw PutItem rate        {raw_mean:8.0f} requests/s")
    print(f"gateway accept rate     {gateway_mean:8.0f} requests/s")
    print(f"ratio gateway/raw       {gateway_mean / raw_mean:8.2f}   (target >= 0.60)")
    print(f"median ratio of rounds  {statistics.median(ratios):8.2f}")
    print(
        f"accept latency at {args.rate:.0f}/s over {args.rate_duration:.0f} s: "
        f"n={len(values)} p50 {percentile(values, 0.5):.2f} ms, "
        f"p90 {percentile(values, 0.9):.2f} ms, p99 {percentile(values, 0.99):.2f} ms, "
        f"max {max(values):.2f} ms; late sends {latency['late']}, errors {latency['errors']}"
        f"   (target p50 <= 5 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
