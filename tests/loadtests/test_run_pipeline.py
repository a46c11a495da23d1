"""The run pipeline with a stand-in load generator and stage: folder, manifest, TRIALS, stops."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from asyncbench.errors import RunError
from loadtests.driver import TrialLoadResult, TrialPlan, TrialProgress
from loadtests.progress import ProgressDisplay
from loadtests.run import RunControl, RunRequest, execute_run
from loadtests.scenario import load_scenario
from reports.schema import (
    CLIENT,
    METRICS,
    SERVER,
    TRIALS,
    read_manifest,
    read_table,
    write_table,
)
from stack.endpoints import Endpoints, VariantEndpoint

ENDPOINTS = Endpoints(
    target="local",
    region="local",
    variants={
        "direct": VariantEndpoint("http://127.0.0.1:1/direct", "t-direct"),
        "storage_first": VariantEndpoint("http://127.0.0.1:1/storage-first", "t-sf", "/x.jsonl"),
    },
    dynamodb_endpoint="http://127.0.0.1:2",
    extra={"metrics_log": "/m.jsonl", "stack_config": {"batch_size": 100}},
)


class FakeStage:
    """Items appear when the stand-in driver 'sends' requests; storage-first ones start PENDING."""

    source = "local"

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {"direct": {}, "storage_first": {}}
        self.begun = 0

    def check(self) -> None:
        pass

    def begin_trial(self) -> None:
        self.begun += 1

    def items(self, variant: str) -> list[dict[str, Any]]:
        table = self.tables[variant]
        result = [dict(item) for item in table.values()]
        for item in table.values():  # processed by the next poll
            item["status"] = "SUCCEEDED"
        return result

    def new_parked_records(self) -> list[dict[str, Any]]:
        return []

    def resolve(self, record: Any) -> list[str]:
        return []

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        return [
            {"variant": variant, "source": "local", "metric": "Invocations",
             "timestamp_ms": end_ms, "value": 1.0, "unit": "Count"},
        ]  # fmt: skip


class StandInDriver:
    """Writes CLIENT rows as the real driver would and registers the items on the fake stage."""

    TrialPlan = TrialPlan

    def __init__(self, stage: FakeStage, requests: int = 3, hold: threading.Event | None = None):
        self.stage = stage
        self.requests = requests
        self.hold = hold
        self.plans: list[TrialPlan] = []
        self.started = threading.Event()

    def open_generator(self, log_dir: Path, **options: Any) -> StandInDriver:
        self.generator_options = options
        return self

    def drive(self, plan: TrialPlan, **options: Any) -> TrialLoadResult:
        return self.drive_trial(plan, **options)

    def close(self) -> None:
        self.closed = True

    def drive_trial(self, plan: TrialPlan, **options: Any) -> TrialLoadResult:
        self.plans.append(plan)
        self.started.set()
        stop: threading.Event = options["stop"]
        options["progress"](TrialProgress(0.5, 10.0, 9.5, self.requests, 0))
        if self.hold is not None:
            stop.wait(10)
        ok = "succeeded" if plan.variant == "direct" else "accepted"
        rows = []
        for index in range(self.requests):
            request_id = f"{plan.variant}-{plan.trial}-{index}"
            status = "SUCCEEDED" if plan.variant == "direct" else "PENDING"
            self.stage.tables[plan.variant][request_id] = {
                "id": request_id, "run_id": plan.run_id, "status": status, "attempts": 1,
                "accepted_at_ms": plan.started_at_ms + index, "request": "{}",
            }  # fmt: skip
            rows.append(
                {
                    "run_id": plan.run_id, "trial": plan.trial, "variant": plan.variant,
                    "scenario": plan.scenario.name, "worker": "w0",
                    "intended_at_ms": plan.started_at_ms + index,
                    "sent_at_ms": plan.started_at_ms + index, "latency_ms": 5.0,
                    "latency_from_intended_ms": 5.0, "status_code": 202, "outcome": ok,
                    "request_id": request_id,
                }
            )  # fmt: skip
        write_table(plan.run_dir, CLIENT, pd.DataFrame(rows), part=f"w0-{plan.trial}")
        return TrialLoadResult(
            started_at_ms=plan.started_at_ms,
            ended_at_ms=plan.started_at_ms + 1000,
            warmup_until_ms=plan.started_at_ms + 100,
            requests_counted={"w0": self.requests},
            rows_written={"w0": self.requests},
            late_sends=0,
            interrupted=stop.is_set(),
        )


def _request(tmp_path: Path, repetitions: int = 2, scenario: str = "baseline") -> RunRequest:
    return RunRequest(
        scenario=load_scenario(scenario).with_overrides(duration=1.0),
        endpoints=ENDPOINTS,
        repetitions=repetitions,
        seed=42,
        out_dir=tmp_path,
        settle_s=0.0,
        start_lead_s=0.0,
    )


def _quiet() -> ProgressDisplay:
    import io

    return ProgressDisplay(io.StringIO(), tty=False)


def test_full_run_writes_a_complete_folder(tmp_path: Path) -> None:
    stage = FakeStage()
    driver = StandInDriver(stage)
    outcome = execute_run(
        _request(tmp_path, scenario="outage"),
        driver=driver,
        display=_quiet(),
        side_factory=lambda endpoints, run_id: stage,
    )
    assert not outcome.partial and outcome.trials_done == 4
    manifest = read_manifest(outcome.run_dir)
    assert manifest["partial"] is False and manifest["error"] is None
    assert manifest["seed"] == 42 and manifest["target"] == "local"
    assert manifest["scenario"]["name"] == "outage"
    assert manifest["scenario"]["parameters"]["stages"][0]["duration_s"] == pytest.approx(1.0)
    assert manifest["stack_config"] == {"batch_size": 100}
    assert manifest["endpoints"]["variants"]["direct"]["table"] == "t-direct"
    for key in ("hostname", "cpu_count", "memory_bytes", "os", "python"):
        assert manifest["machine"][key]
    assert manifest["libraries"]["pandas"] and manifest["libraries"]["locust"]
    assert manifest["suite"]["version"]
    assert manifest["ended_at"]["ms"] >= manifest["started_at"]["ms"]
    order = [(t["repetition"], t["variant"]) for t in manifest["trial_order"]]
    assert sorted(order) == [
        (1, "direct"),
        (1, "storage_first"),
        (2, "direct"),
        (2, "storage_first"),
    ]
    assert [plan.variant for plan in driver.plans] == [
        t["variant"] for t in manifest["trial_order"]
    ]
    assert stage.begun == 4

    trials = read_table(outcome.run_dir, TRIALS)
    assert list(trials["trial"]) == [1, 2, 3, 4]
    assert trials["complete"].all() and (trials["unfinished"] == 0).all()
    assert (trials["requests_counted"] == 3).all() and (trials["rows_written"] == 3).all()
    # The outage window is relative to each trial's own start.
    outage = load_scenario("outage").with_overrides(duration=1.0).outage
    assert outage is not None
    offsets = trials["outage_start_ms"] - trials["started_at_ms"]
    assert offsets.tolist() == pytest.approx([outage.start_s * 1000] * 4)

    server = read_table(outcome.run_dir, SERVER)
    client = read_table(outcome.run_dir, CLIENT)
    assert len(server) == 12 and set(server["request_id"]) == set(client["request_id"])
    # Each item belongs to the trial that sent it, never collected twice.
    merged = server.merge(client, on="request_id", suffixes=("_server", "_client"))
    assert (merged["trial_server"] == merged["trial_client"]).all()
    assert (server["status"] == "SUCCEEDED").all()
    assert len(read_table(outcome.run_dir, METRICS)) == 4


def test_stop_mid_trial_leaves_a_partial_folder(tmp_path: Path) -> None:
    stage = FakeStage()
    hold = threading.Event()
    driver = StandInDriver(stage, hold=hold)
    control = RunControl()
    outcome_box: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcome_box.append(
            execute_run(
                _request(tmp_path),
                driver=driver,
                control=control,
                display=_quiet(),
                side_factory=lambda endpoints, run_id: stage,
            )
        )
    )
    thread.start()
    assert driver.started.wait(10)
    control.stop.set()
    thread.join(20)
    assert not thread.is_alive()
    outcome = outcome_box[0]
    assert outcome.partial and outcome.trials_done == 1
    manifest = read_manifest(outcome.run_dir)
    assert manifest["partial"] is True and manifest["trials_done"] == 1
    trials = read_table(outcome.run_dir, TRIALS)
    assert trials["complete"].tolist() == [False]
    assert len(read_table(outcome.run_dir, SERVER)) == 3  # what existed was still collected


def test_abort_skips_collection_but_still_writes_a_valid_manifest(tmp_path: Path) -> None:
    stage = FakeStage()
    driver = StandInDriver(stage)
    control = RunControl()
    control.stop.set()
    control.abort.set()
    outcome = execute_run(
        _request(tmp_path), driver=driver, control=control, display=_quiet(),
        side_factory=lambda endpoints, run_id: stage,
    )  # fmt: skip
    assert outcome.partial and outcome.trials_done == 0 and driver.plans == []
    manifest = read_manifest(outcome.run_dir)
    assert manifest["partial"] is True and manifest["ended_at"] is not None
    assert read_table(outcome.run_dir, TRIALS).empty


def test_lost_rows_fail_the_run_but_leave_the_folder(tmp_path: Path) -> None:
    stage = FakeStage()

    class LosingDriver(StandInDriver):
        def drive_trial(self, plan: TrialPlan, **options: Any) -> TrialLoadResult:
            raise RunError("trial 1 (direct) lost client records (w0: 2 rows for 3 requests)")

    with pytest.raises(RunError, match="lost client records"):
        execute_run(
            _request(tmp_path), driver=LosingDriver(stage), display=_quiet(),
            side_factory=lambda endpoints, run_id: stage,
        )  # fmt: skip
    (run_dir,) = tmp_path.iterdir()
    manifest = read_manifest(run_dir)
    assert manifest["partial"] is True and "lost client records" in manifest["error"]


def test_collection_waits_for_pending_items(tmp_path: Path) -> None:
    stage = FakeStage()
    outcome = execute_run(
        _request(tmp_path, repetitions=1), driver=StandInDriver(stage), display=_quiet(),
        side_factory=lambda endpoints, run_id: stage,
    )  # fmt: skip
    server = read_table(outcome.run_dir, SERVER)
    # Storage-first items were PENDING on the first poll; collection polled until terminal.
    assert set(server["status"]) == {"SUCCEEDED"}


def test_progress_display_plain_and_tty() -> None:
    import io

    plain = io.StringIO()
    display = ProgressDisplay(plain, tty=False, every_s=3600)
    display.begin_trial(1, 4, "direct", 1)
    display.load(TrialProgress(1.0, 10.0, 9.0, 9, 1))
    display.load(TrialProgress(2.0, 10.0, 9.0, 19, 1))  # throttled
    lines = plain.getvalue().splitlines()
    assert lines[0] == "trial 1/4 direct (repetition 1): load starts"
    assert len(lines) == 2 and "offered    10.0/s" in lines[1] and "errors 1" in lines[1]
    tty = io.StringIO()
    display = ProgressDisplay(tty, tty=True)
    display.begin_trial(2, 4, "storage_first", 1)
    display.load(TrialProgress(1.0, 10.0, 9.0, 9, 0))
    display.collecting(3, 0.5)
    display.close()
    assert "\r\033[K" in tty.getvalue() and "3 outstanding" in tty.getvalue()
    assert tty.getvalue().endswith("\n")


def test_local_endpoints_get_the_local_collector() -> None:
    from loadtests.collect_local import LocalStageSide
    from loadtests.run import make_stage_side

    side = make_stage_side(ENDPOINTS, "r")
    assert isinstance(side, LocalStageSide)
