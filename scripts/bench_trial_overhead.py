"""Measure the fixed cost of a trial (everything but the load itself) and print its breakdown.

    .venv/bin/python scripts/bench_trial_overhead.py [--repetitions 3] [--duration 3]
        [--rate 20] [--endpoints FILE]

Runs ``asyncbench run``'s pipeline (``loadtests.run.execute_run``) on the local stage, with the
real load generator and the real collection, for a short baseline scenario; it starts its own
local stage in a temporary state folder unless ``--endpoints`` names a running one. Every
trial's wall time is split into:

- ``start``: from the run asking for the trial to the load generator being ready (process
  start and user spawn when the generator is started per trial; a warm one only spawns users);
- ``lead``: from ready to time zero (the lead the run gives the generator);
- ``load``: the scheduled load (the scenario's duration, not overhead);
- ``drain``: from the end of the schedule to the end of the load (requests in flight);
- ``hand-back``: from the end of the load to the run getting the result (generator shutdown);
- ``collect``: reading the client rows, polling the stage until settled, reading metrics;
- ``pause``: from collection's end to the next trial (writing the folder, fixed pauses).

The overhead of a trial is its wall time minus the scheduled load. The machine's load average
is printed with the figures: other processes on the machine slow every part of this down.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from loadtests.progress import ProgressDisplay
from loadtests.run import RunRequest, execute_run, make_stage_side
from loadtests.scenario import load_scenario
from stack.endpoints import Endpoints, read_endpoints

PARTS = ("start", "lead", "drain", "hand-back", "collect", "pause")


def _now_ms() -> float:
    return time.time() * 1000.0


class _Timeline:
    """Timestamps (epoch ms) of each trial's phases, filled by the wrappers below."""

    def __init__(self) -> None:
        self.trials: list[dict[str, float]] = []
        self.run_started_ms = 0.0
        self.run_ended_ms = 0.0

    @property
    def current(self) -> dict[str, float]:
        return self.trials[-1]

    def breakdown(self, duration_s: float) -> list[dict[str, float]]:
        rows = []
        for index, marks in enumerate(self.trials):
            end = (
                self.trials[index + 1]["begin"]
                if index + 1 < len(self.trials)
                else self.run_ended_ms
            )
            zero = marks["zero"]
            ready = marks.get("ready", zero)
            schedule_end = zero + duration_s * 1000.0
            row = {
                "start": ready - marks["begin"],
                "lead": zero - ready,
                "drain": marks["ended"] - schedule_end,
                "hand-back": marks["returned"] - marks["ended"],
                "collect": marks["collected"] - marks["returned"],
                "pause": end - marks["collected"],
            }
            row["wall"] = end - marks["begin"]
            row["overhead"] = row["wall"] - duration_s * 1000.0
            rows.append({key: value / 1000.0 for key, value in row.items()})
        return rows


class _TimedSide:
    """The stage side of the run, stamping when a trial begins and when collection ends."""

    def __init__(self, side: Any, timeline: _Timeline) -> None:
        self._side = side
        self._timeline = timeline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._side, name)

    def begin_trial(self) -> None:
        self._timeline.trials.append({"begin": _now_ms()})
        self._side.begin_trial()

    def metrics(self, variant: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        rows = self._side.metrics(variant, start_ms, end_ms)
        self._timeline.current["collected"] = _now_ms()
        return list(rows)


def _timed_result(result: Any, timeline: _Timeline) -> Any:
    marks = timeline.current
    marks["returned"] = _now_ms()
    marks["zero"] = result.started_at_ms
    marks["ended"] = result.ended_at_ms
    ready = getattr(result, "ready_at_ms", None)
    if ready:
        marks["ready"] = ready
    return result


class _TimedDriver:
    """The real load generator, stamping when each trial's load returned."""

    def __init__(self, timeline: _Timeline) -> None:
        from loadtests import driver

        self._driver = driver
        self._timeline = timeline
        self.TrialPlan = driver.TrialPlan

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def drive_trial(self, plan: Any, **options: Any) -> Any:
        return _timed_result(self._driver.drive_trial(plan, **options), self._timeline)

    def open_generator(self, log_dir: Path, **options: Any) -> Any:
        generator = self._driver.open_generator(log_dir, **options)
        timeline = self._timeline

        class Timed:
            def __getattr__(self, name: str) -> Any:
                return getattr(generator, name)

            def __enter__(self) -> Any:
                generator.__enter__()
                return self

            def __exit__(self, *exc: object) -> None:
                generator.__exit__(*exc)

            def close(self) -> None:
                generator.close()

            def drive(self, plan: Any, **drive_options: Any) -> Any:
                return _timed_result(generator.drive(plan, **drive_options), timeline)

        return Timed()


def _start_stage(state_dir: Path) -> Path:
    env = {**os.environ, "ASYNCBENCH_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "asyncbench", "local", "up", "--detach"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"local up failed: {result.stderr.strip()}")
    return Path(result.stdout.strip().splitlines()[-1])


def _stop_stage(state_dir: Path) -> None:
    env = {**os.environ, "ASYNCBENCH_STATE_DIR": str(state_dir)}
    subprocess.run(
        [sys.executable, "-m", "asyncbench", "local", "down"], env=env, capture_output=True,
        check=False,
    )  # fmt: skip


def _measure(endpoints: Endpoints, args: argparse.Namespace, out_dir: Path) -> None:
    scenario = load_scenario("baseline").with_overrides(rate=args.rate, duration=args.duration)
    timeline = _Timeline()
    request = RunRequest(
        scenario=scenario,
        endpoints=endpoints,
        repetitions=args.repetitions,
        seed=1,
        out_dir=out_dir,
        processes=args.processes,
    )
    load_before = os.getloadavg()[0]
    timeline.run_started_ms = _now_ms()
    outcome = execute_run(
        request,
        driver=_TimedDriver(timeline),
        display=ProgressDisplay(io.StringIO(), tty=False),
        side_factory=lambda e, run_id: _TimedSide(make_stage_side(e, run_id), timeline),
    )
    timeline.run_ended_ms = _now_ms()
    rows = timeline.breakdown(scenario.duration_s)
    print(f"cores {os.cpu_count()}, load average {load_before:.1f} before / "
          f"{os.getloadavg()[0]:.1f} after; {len(rows)} trials of {scenario.duration_s:g} s at "
          f"{args.rate:g}/s, processes {args.processes}; run {outcome.run_dir.name}")  # fmt: skip
    header = "trial  " + "".join(f"{part:>10}" for part in (*PARTS, "overhead", "wall"))
    print(header)
    per_part: dict[str, list[float]] = defaultdict(list)
    for number, row in enumerate(rows, start=1):
        print(f"{number:5d}  " + "".join(f"{row[p]:10.2f}" for p in (*PARTS, "overhead", "wall")))
        for key, value in row.items():
            per_part[key].append(value)
    print("median " + "".join(
        f"{statistics.median(per_part[p]):10.2f}" for p in (*PARTS, "overhead", "wall")
    ))  # fmt: skip
    first_begin = timeline.trials[0]["begin"] if timeline.trials else timeline.run_ended_ms
    print(f"run set-up before the first trial {(first_begin - timeline.run_started_ms) / 1000:.2f}"
          f" s; whole run {(timeline.run_ended_ms - timeline.run_started_ms) / 1000:.1f} s; "
          f"median per-trial overhead {statistics.median(per_part['overhead']):.2f} s "
          "(target <= 2 s)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3, help="trials per variant")
    parser.add_argument("--duration", type=float, default=3.0, help="load seconds per trial")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--processes", type=int, default=1, help="load-generator processes")
    parser.add_argument("--endpoints", type=Path, help="endpoints file of a running local stage")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        state_dir = Path(folder) / "state"
        started_stage = args.endpoints is None
        endpoints_path = args.endpoints or _start_stage(state_dir)
        try:
            _measure(read_endpoints(endpoints_path, target="local"), args, Path(folder) / "runs")
        finally:
            if started_stage:
                _stop_stage(state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
