"""The master/worker protocol: one trial's schedule split over Locust workers, rows to the master.

The master (:class:`MasterGenerator`, inside the engine process) runs a Locust ``MasterRunner``
and waits for its workers: ``processes`` local ones it starts itself, or ``expect_workers``
remote ones (``asyncbench worker`` on other machines, which run :func:`serve_worker` here). A
worker first says :data:`~loadtests.wire.HELLO` with its asyncbench version; one with another
version is refused with one line on both sides. Workers and their users live for the whole
run. Per trial the master sends each worker its share (:data:`~loadtests.wire.PLAN`: slots
``k % count == index`` of one schedule), then time zero (:data:`~loadtests.wire.GO`); workers
stream their rows (:data:`~loadtests.wire.ROWS`) and end with :data:`~loadtests.wire.DONE` on
the same connection, so the master has every row before it hears a worker is done.

A worker that stops answering (killed, network gone) is declared lost by Locust's heartbeat
after a few seconds: the master says so in one line, keeps the rows it delivered, and counts
the slots of its share without a delivered row as dropped.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from asyncbench import __version__
from asyncbench.errors import RunError
from loadtests.engine import (
    START_LEAD_S,
    Emit,
    Stopping,
    WorkerTally,
    assemble_result,
    drain_deadline,
    ensure_users,
    now_ms,
    open_web_ui,
    seconds_in_flight,
    trial_setup,
    wait_until,
)
from loadtests.lifeline import PARENT_OPTION, die_with_parent, parent_arguments
from loadtests.outcomes import ACCEPTED_OUTCOMES
from loadtests.pacing import Schedule, users_needed
from loadtests.wire import (
    DONE,
    GO,
    HELLO,
    PLAN,
    REFUSE,
    ROWS,
    STOP,
    DoneReport,
    GoData,
    HelloData,
    PlanData,
    RefuseData,
    RowsData,
    TrialLoadResult,
    TrialPlan,
)

__all__ = ["EXIT_REFUSED", "MasterGenerator", "serve_worker"]

WORKERS_CONNECT_TIMEOUT_S = 60.0
"""How long the master waits for its workers to connect (local processes or remote ones)."""
GO_LEAD_S = 0.5
"""Lead between the go message and time zero: it must reach every worker first."""
EXIT_REFUSED = 3
"""Exit code of a worker the master refused (another asyncbench version)."""


def _send(runner: Any, kind: str, data: Mapping[str, Any], client_id: str | None = None) -> None:
    """A custom message (one of loadtests.wire's TypedDicts) to the master or a worker."""
    runner.send_message(kind, dict(data), client_id=client_id)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MasterGenerator:
    """A Locust master whose workers serve every trial of the run."""

    def __init__(
        self,
        *,
        local_workers: int,
        expect_workers: int,
        bind_host: str,
        port: int,
        emit: Emit,
        stopping: Stopping,
        web_port: int | None = None,
    ) -> None:
        from locust.env import Environment

        from loadtests.users import TrialContext, make_user_class

        self.emit = emit
        local_only = expect_workers == 0
        self.port = _free_port() if local_only else port
        # The master runs no users; it needs the class only to dispatch users by class name.
        self.environment = Environment(user_classes=[make_user_class(TrialContext())])
        self.runner = self.environment.create_master_runner(
            master_bind_host="127.0.0.1" if local_only else bind_host,
            master_bind_port=self.port,
        )
        open_web_ui(self.environment, web_port, emit)
        self.names: dict[str, str] = {}  # Locust node id -> worker name (w0, w1, ...)
        self.lost: set[str] = set()
        self._trial = 0
        self._received: dict[str, int] = defaultdict(int)
        self._first_attempts: dict[str, int] = defaultdict(int)
        self._errors = 0
        self._done: dict[str, DoneReport] = {}
        self._writer: Any = None
        """The trial's PartWriter (None when recording is off)."""
        self.runner.register_message(HELLO, self._on_hello)
        self.runner.register_message(ROWS, self._on_rows)
        self.runner.register_message(DONE, self._on_done)
        command = [sys.executable, "-m", "loadtests.distributed", *parent_arguments()]
        command += ["--master-host", "127.0.0.1", "--master-port", str(self.port)]
        self.children = [
            subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            for _ in range(local_workers)
        ]
        total = local_workers + expect_workers
        where = f"port {self.port}" if local_only else f"{bind_host}:{self.port}"

        def workers_ready() -> bool:
            exited = [child.returncode for child in self.children if child.poll() is not None]
            if exited:
                raise RunError(f"a local worker process exited (code {exited[0]}) before the load")
            return len(self._connected()) >= total

        wait_until(
            workers_ready, WORKERS_CONNECT_TIMEOUT_S, f"{total} workers on {where}", stopping
        )

    # --- messages from workers (run in the runner's greenlet) ---------------------------------

    def _on_hello(self, environment: Any, msg: Any, **_: Any) -> None:
        hello: HelloData = msg.data
        if hello["version"] != __version__:
            reason = (
                f"the master runs asyncbench {__version__}, this worker {hello['version']}; "
                "install the same version on every machine"
            )
            refusal: RefuseData = {"reason": reason}
            _send(self.runner, REFUSE, refusal, client_id=msg.node_id)
            # Out of the master's book at once, so no user is ever dispatched to it.
            if msg.node_id in self.runner.clients:
                del self.runner.clients[msg.node_id]
            notice = f"refused a worker on {hello['host']}: {reason}"
            self.emit({"type": "notice", "message": notice})
            return
        self.names[msg.node_id] = f"w{len(self.names)}"

    def _on_rows(self, environment: Any, msg: Any, **_: Any) -> None:
        data: RowsData = msg.data
        if data["trial"] != self._trial:
            return  # a straggler of an earlier trial (its rows were counted dropped)
        columns = data["columns"]
        worker = data["worker"]
        outcomes = Counter(columns["outcome"])
        self._received[worker] += len(columns["outcome"])
        self._first_attempts[worker] += columns["attempt"].count(1)
        self._errors += sum(n for name, n in outcomes.items() if name not in ACCEPTED_OUTCOMES)
        if self._writer is not None:
            # Each batch is one worker's flush (<= FLUSH_ROWS rows or FLUSH_INTERVAL_S): one
            # row group as it comes, columns straight to Arrow (the master's cost per request).
            self._writer.write_columns(worker, columns)

    def _on_done(self, environment: Any, msg: Any, **_: Any) -> None:
        report: DoneReport = msg.data
        if report["trial"] == self._trial:
            self._done[report["worker"]] = report

    # --- the trial ------------------------------------------------------------------------------

    def _connected(self) -> list[str]:
        """Node ids of accepted workers that are connected and answering, in a stable order."""
        from locust.runners import STATE_MISSING

        alive = {node.id for node in self.runner.clients.all if node.state != STATE_MISSING}
        return sorted((node for node in self.names if node in alive), key=self.names.__getitem__)

    def drive(
        self, plan: TrialPlan, *, record: bool, emit: Emit, stopping: Stopping
    ) -> TrialLoadResult:
        import gevent

        from loadtests.engine import ProgressMeter
        from loadtests.recorder import PartWriter

        nodes = self._connected()
        if not nodes:
            raise RunError("no load-generator worker is left; start `asyncbench worker` again")
        names = [self.names[node] for node in nodes]
        writer = PartWriter(plan.run_dir, plan.trial)
        self._writer = writer if record else None
        self._trial = plan.trial
        self._received.clear()
        self._first_attempts.clear()
        self._errors = 0
        self._done = {}
        count = len(nodes)
        for index, node in enumerate(nodes):
            assignment: PlanData = {
                "plan": plan.to_wire(), "worker": names[index], "index": index, "count": count,
                "record": record,
            }  # fmt: skip
            _send(self.runner, PLAN, assignment, client_id=node)
        per_worker = users_needed(
            plan.scenario.peak_rate_per_s,
            processes=count,
            seconds_in_flight=seconds_in_flight(plan.scenario),
        )
        ensure_users(self.runner, per_worker * count, stopping)
        ready_ms = now_ms()
        zero_ms = max(plan.started_at_ms, ready_ms + max(START_LEAD_S, GO_LEAD_S) * 1000.0)
        go: GoData = {"zero_ms": zero_ms}
        _send(self.runner, GO, go)
        cpu_at_go = time.process_time()
        zero_monotonic = time.monotonic() + (zero_ms - now_ms()) / 1000.0
        deadline = drain_deadline(plan.scenario, zero_monotonic) + 5.0
        schedule = Schedule(plan.scenario)  # the master's copy: shares and offered rates
        meter = ProgressMeter(schedule, zero_ms, emit)
        lost: list[str] = []
        stop_sent = False
        while time.monotonic() < deadline:
            alive = set(self._connected())
            for node, name in zip(nodes, names, strict=True):
                if node not in alive and name not in lost and name not in self._done:
                    lost.append(name)
                    emit({"type": "notice", "message": (
                        f"worker {name} lost during trial {plan.trial}: its "
                        f"{self._received[name]} delivered rows are kept, its undelivered "
                        "slots are counted as dropped"
                    )})  # fmt: skip
            if all(name in self._done or name in lost for name in names):
                break
            if stopping and not stop_sent:
                self.runner.send_message(STOP, {})
                stop_sent = True
            meter.tick(sum(self._received.values()), self._errors)
            gevent.sleep(0.05)
        ended_ms = now_ms()
        writer.close()
        self._writer = None
        master_cpu_s = time.process_time() - cpu_at_go
        tallies: dict[str, WorkerTally] = {}
        for index, name in enumerate(names):
            report = self._done.get(name)
            if report is None:  # lost, or silent past the deadline: what it delivered counts
                if name not in lost:
                    lost.append(name)
                    emit({"type": "notice", "message": (
                        f"worker {name} never reported the end of trial {plan.trial}"
                    )})  # fmt: skip
                tallies[name] = WorkerTally(
                    counted=self._received[name],
                    written=writer.written.get(name, 0),
                    late=0,
                    dropped=schedule.share(index, count) - self._first_attempts[name],
                )
                continue
            tallies[name] = WorkerTally(
                counted=report["counted"],
                written=writer.written.get(name, 0),
                late=report["late"],
                dropped=report["dropped"],
                cpu_s=report["cpu_s"],
            )
        self._trial = 0  # rows arriving from now on are stragglers
        return assemble_result(
            plan,
            zero_ms=zero_ms,
            ready_ms=ready_ms,
            ended_ms=ended_ms,
            tallies=tallies,
            lost=lost,
            record=record,
            interrupted=bool(stopping),
            users=self.runner.target_user_count or 0,
            cpu_s=master_cpu_s,
        )

    def close(self) -> None:
        self.runner.quit()
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


# --- the worker side ------------------------------------------------------------------------------


def serve_worker(master_host: str, master_port: int) -> int:
    """Be a worker of one run: 0 when the run ended, 1 without a master, EXIT_REFUSED when
    the master refused this worker's version."""
    import locust  # noqa: F401  (first: monkey-patches the process for gevent)

    try:
        return _serve(master_host, master_port)
    except ConnectionError:
        print(f"no master at {master_host}:{master_port}", file=sys.stderr)
        return 1


def _serve(master_host: str, master_port: int) -> int:
    import gevent
    from locust.env import Environment

    from loadtests.engine import settle_garbage_collector
    from loadtests.recorder import Recorder, rows_to_columns
    from loadtests.users import TrialContext, TrialRound, make_user_class

    context = TrialContext()
    environment = Environment(user_classes=[make_user_class(context)])
    environment.events.request.add_listener(context.count_request)
    runner = environment.create_worker_runner(master_host, master_port)
    assignment: dict[str, Any] = {}
    refused: list[str] = []

    def on_refuse(environment: Any, msg: Any, **_: Any) -> None:
        refusal: RefuseData = msg.data
        refused.append(refusal["reason"])
        runner.quit()

    def on_plan(environment: Any, msg: Any, **_: Any) -> None:
        data: PlanData = msg.data
        plan = TrialPlan.from_wire(data["plan"])
        worker = data["worker"]

        def forward(name: str, rows: list[dict[str, Any]]) -> None:
            columns = rows_to_columns(rows)
            batch: RowsData = {"worker": name, "trial": plan.trial, "columns": columns}
            _send(runner, ROWS, batch)

        assignment.update(plan=plan, index=data["index"], count=data["count"])
        context.prepare(trial_setup(plan, worker, Recorder(forward) if data["record"] else None))

    def on_go(environment: Any, msg: Any, **_: Any) -> None:
        data: GoData = msg.data
        plan: TrialPlan = assignment["plan"]
        settle_garbage_collector()
        current = context.arm(
            data["zero_ms"], index=assignment["index"], count=assignment["count"], seed=plan.seed
        )
        gevent.spawn(finish, current, time.process_time())

    def finish(current: TrialRound, cpu_at_go: float) -> None:
        recorder = current.setup.recorder
        while not current.finished:
            if recorder is not None and recorder.due():
                recorder.flush()
            gevent.sleep(0.05)
        if recorder is not None:
            recorder.flush()
        context.close()
        # Same connection as the rows: the master receives every batch before this message.
        report: DoneReport = {
            "worker": current.setup.worker,
            "trial": current.setup.trial,
            "counted": current.counted,
            "rows": current.recorded,
            "late": current.pacer.late,
            "dropped": current.dropped,
            "cpu_s": time.process_time() - cpu_at_go,
        }
        _send(runner, DONE, report)

    def on_stop(environment: Any, msg: Any, **_: Any) -> None:
        if context.round is not None:
            context.round.pacer.stop()

    runner.register_message(REFUSE, on_refuse)
    runner.register_message(PLAN, on_plan)
    runner.register_message(GO, on_go)
    runner.register_message(STOP, on_stop)
    hello: HelloData = {"version": __version__, "host": socket.gethostname()}
    _send(runner, HELLO, hello)
    runner.greenlet.join()
    if refused:
        print(f"asyncbench worker: refused by the master: {refused[0]}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.distributed")
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, required=True)
    parser.add_argument(PARENT_OPTION, type=int, help="die with this process (its starter)")
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    return serve_worker(args.master_host, args.master_port)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
