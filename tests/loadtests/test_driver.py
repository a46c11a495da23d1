"""drive_trial end to end against a small stdlib HTTP server in a thread.

Locust runs in the driver's child processes, so this test process never imports it (gevent's
monkey-patching stays out of the test session). Each test offers a few seconds of load.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from asyncbench.errors import RunError
from loadtests.driver import TrialPlan, TrialProgress, drive_trial
from loadtests.scenario import ClientRetry, Scenario, Stage
from reports.schema import CLIENT, OUTCOMES, read_table

LEAD_MS = 1500.0  # the child usually starts within this; if not, time zero moves later


@dataclass
class FakeApi:
    """Answers POST .../requests with 202 and a request id; can stall during a window."""

    port: int = 0
    received: int = 0
    run_ids: set[str] = field(default_factory=set)
    stall_after_first_ms: tuple[float, float] | None = None
    """(start, duration) of a stall, in ms after the first request arrived."""
    first_at_ms: float | None = None
    polls: dict[str, int] = field(default_factory=dict)
    connected_at_ms: list[float] = field(default_factory=list)
    """When each client connection was accepted."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/storage-first"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    state = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            with state.lock:
                state.connected_at_ms.append(time.time() * 1000.0)
            super().setup()

        def do_POST(self) -> None:
            json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            now_ms = time.time() * 1000.0
            with state.lock:
                state.received += 1
                state.run_ids.add(self.headers.get("X-Run-Id", ""))
                if state.first_at_ms is None:
                    state.first_at_ms = now_ms
            if state.stall_after_first_ms is not None:
                start = state.first_at_ms + state.stall_after_first_ms[0]
                remaining = start + state.stall_after_first_ms[1] - now_ms
                if now_ms >= start and remaining > 0:
                    time.sleep(remaining / 1000.0)  # the server's stall, not a test wait
            if self.path.startswith("/direct/"):
                self._answer(502, {"error": "downstream outage"})
                return
            self._answer(202, {"requestId": uuid.uuid4().hex, "status": "PENDING"})

        def do_GET(self) -> None:
            request_id = self.path.rsplit("/", 1)[-1]
            with state.lock:
                state.polls[request_id] = state.polls.get(request_id, 0) + 1
                seen = state.polls[request_id]
            self._answer(
                200, {"requestId": request_id, "status": "PENDING" if seen < 3 else "FAILED"}
            )

        def _answer(self, status: int, payload: dict[str, str]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # every user connects at once (the default 5 drops SYNs)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _plan(
    api: FakeApi,
    run_dir: Path,
    *stages: tuple[float, float],
    variant: str = "storage_first",
    **options: Any,
) -> TrialPlan:
    scenario = Scenario(
        name="t",
        description="test",
        stages=tuple(Stage(duration, rate) for duration, rate in stages),
        **{"warmup_s": 0.5, "request_timeout_s": 10.0, **options},
    )
    return TrialPlan(
        run_id="run-1",
        trial=2,
        repetition=1,
        variant=variant,
        base_url=api.base_url.replace("/storage-first", f"/{variant.replace('_', '-')}"),
        scenario=scenario,
        run_dir=run_dir,
        started_at_ms=time.time() * 1000.0 + LEAD_MS,
        seed=11,
    )


def test_users_connect_before_time_zero(api: FakeApi, tmp_path: Path) -> None:
    """A user's first request of a run does not pay for opening its connection."""
    result = drive_trial(_plan(api, tmp_path, (1.0, 40)))
    assert result.rows_written == {"w0": 40} and result.users > 40
    assert api.first_at_ms is not None
    early = [at for at in api.connected_at_ms if at < api.first_at_ms]
    assert len(early) == len(api.connected_at_ms) == result.users


def test_every_request_is_one_row_paced_on_schedule(api: FakeApi, tmp_path: Path) -> None:
    plan = _plan(api, tmp_path, (1.5, 40), (1.5, 120))
    seen: list[TrialProgress] = []
    result = drive_trial(plan, progress=seen.append)
    rows = read_table(tmp_path, CLIENT)
    zero = result.started_at_ms
    assert zero >= plan.started_at_ms  # later only if the generator was not ready in time
    assert result.requests_counted == result.rows_written == {"w0": 240}
    assert len(rows) == api.received == 240
    assert api.run_ids == {"run-1"}
    assert set(rows["outcome"]) == {"accepted"} and set(rows["outcome"]) <= set(OUTCOMES)
    assert rows["request_id"].notna().all() and rows["request_id"].is_unique
    assert (rows["trial"] == 2).all() and (rows["variant"] == "storage_first").all()
    assert (rows["sent_at_ms"] >= rows["intended_at_ms"] - 1).all()
    assert (rows["latency_from_intended_ms"] >= rows["latency_ms"] - 1).all()
    # Open loop: the intended times are the schedule (40/s, then 120/s) whatever the server did.
    offsets = (rows["intended_at_ms"].sort_values() - zero) / 1000.0
    assert offsets.iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert (offsets < 1.5).sum() == 60 and (offsets >= 1.5).sum() == 180
    # Achieved rate in the 120/s stage, from actual send times: within 2% of the target.
    sent = (rows["sent_at_ms"] - zero) / 1000.0
    in_stage = sent[(sent >= 1.5) & (sent < 3.0)]
    assert len(in_stage) == pytest.approx(180, rel=0.02)
    assert rows.loc[rows["warmup"], "intended_at_ms"].max() < result.warmup_until_ms
    assert set(rows["stage"]) == {0, 1}
    assert sorted(set(rows["target_rate_per_s"])) == [40.0, 120.0]
    # Late sends here come from the machine's scheduler only (other processes share the CPU).
    late = (rows["sent_at_ms"] - rows["intended_at_ms"] > 10).sum()
    assert result.late_sends == pytest.approx(late, abs=3)
    assert result.late_sends <= 0.25 * len(rows)
    assert seen and seen[-1].sent <= 240 and not result.interrupted
    assert result.dropped_sends == 0


def test_a_server_stall_shows_in_latency_from_intended_time(api: FakeApi, tmp_path: Path) -> None:
    plan = _plan(api, tmp_path, (3.5, 100))
    api.stall_after_first_ms = (1000.0, 1500.0)
    result = drive_trial(plan)
    rows = read_table(tmp_path, CLIENT)
    assert len(rows) == result.total_counted == 350
    # The first request is the slot at time zero; the server stalls from 1 s to 2.5 s after it.
    assert api.first_at_ms is not None
    assert api.first_at_ms - result.started_at_ms == pytest.approx(0, abs=50)
    stall_start = api.first_at_ms + 1000.0
    stall_end = stall_start + 1500.0
    during = rows[(rows["intended_at_ms"] >= stall_start) & (rows["intended_at_ms"] < stall_end)]
    assert len(during) == pytest.approx(150, abs=6)
    remaining = stall_end - during["intended_at_ms"]
    # Every request due during the stall waited at least for the rest of it, whether it was
    # sent on time (and stalled in the server) or late (no user was free to send it).
    assert (during["latency_from_intended_ms"] >= remaining - 5).all()
    # The pool of users is smaller than the 150 requests due in the stall: some went out late,
    # were counted, kept their intended time, and were not skipped.
    late = rows[rows["sent_at_ms"] - rows["intended_at_ms"] > 10]
    assert result.late_sends == len(late) > 0
    assert (late["latency_from_intended_ms"] > late["latency_ms"] + 10).all()


@pytest.mark.parametrize("processes", [1, 2])
def test_stop_ends_the_trial_cleanly(api: FakeApi, tmp_path: Path, processes: int) -> None:
    plan = _plan(api, tmp_path, (30, 50))
    stop = threading.Event()

    def on_progress(progress: TrialProgress) -> None:
        if progress.sent >= 50:
            stop.set()

    started = time.monotonic()
    result = drive_trial(plan, processes=processes, progress=on_progress, stop=stop)
    assert time.monotonic() - started < 20
    assert result.interrupted
    rows = read_table(tmp_path, CLIENT)
    assert 50 <= len(rows) == result.total_counted == api.received < 1500
    # Every slot of the schedule that has no row was never sent, and is counted as dropped.
    assert result.dropped_sends == 1500 - len(rows)


def test_two_processes_lose_no_rows(api: FakeApi, tmp_path: Path) -> None:
    plan = _plan(api, tmp_path, (3, 150))
    result = drive_trial(plan, processes=2)
    rows = read_table(tmp_path, CLIENT)
    assert result.workers == ("w0", "w1")
    assert result.requests_counted == result.rows_written == {"w0": 225, "w1": 225}
    assert len(rows) == api.received == 450
    assert rows.groupby("worker").size().to_dict() == {"w0": 225, "w1": 225}
    # Together the workers offered the schedule exactly once.
    offsets = ((rows["intended_at_ms"] - result.started_at_ms) * 150 / 1000.0).round()
    assert sorted(offsets.astype(int)) == list(range(450))
    parts = {path.stem.split("-")[1] for path in (tmp_path / CLIENT.location).glob("*.parquet")}
    assert parts == {"w0", "w1"}


def test_a_dead_target_is_recorded_not_lost(tmp_path: Path) -> None:
    api = FakeApi(port=1)  # nothing listens on port 1
    plan = _plan(api, tmp_path, (1, 20))
    result = drive_trial(plan)
    rows = read_table(tmp_path, CLIENT)
    assert len(rows) == result.total_counted == 20
    assert set(rows["outcome"]) == {"connection_error"}
    assert (rows["status_code"] == 0).all() and rows["error"].notna().all()


def test_bad_arguments_are_run_errors(api: FakeApi, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="processes"):
        drive_trial(_plan(api, tmp_path, (1, 1)), processes=0)


def test_client_retries_are_rows_and_polling_fills_the_result(api: FakeApi, tmp_path: Path) -> None:
    retry = ClientRetry(max_attempts=3, backoff_ms=20)
    direct = drive_trial(_plan(api, tmp_path, (1, 10), variant="direct", client_retry=retry))
    rows = read_table(tmp_path, CLIENT)
    # Every slot went out three times (502 each time); every attempt is its own row.
    assert len(rows) == direct.total_counted == 30
    assert (
        sorted(rows.groupby("intended_at_ms")["attempt"].apply(sorted).tolist()) == [[1, 2, 3]] * 10
    )
    assert set(rows["outcome"]) == {"server_error"} and set(rows["error"]) == {"downstream outage"}
    retries = rows[rows["attempt"] > 1]
    assert (retries["sent_at_ms"] > retries["intended_at_ms"] + 20).all()

    polled = tmp_path / "polled"
    drive_trial(_plan(api, polled, (1, 10), poll_results=True))
    rows = read_table(polled, CLIENT)
    assert len(rows) == 10 and set(rows["result_status"]) == {"FAILED"}
    assert (rows["time_to_result_ms"] > rows["latency_ms"]).all()
    assert all(api.polls[request_id] == 3 for request_id in rows["request_id"])
