"""`asyncbench demo`: the main job. Local stage up, both variants through the default scenario
set, one report, local stage down (also on Ctrl-C or failure).

The demo drives the same commands a user would type (`local up --detach`, `run`, `report`,
`local down`), each as a child process, so what the demo shows is exactly what the commands do.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from asyncbench.errors import AsyncbenchError

__all__ = ["DEMO_PLANS", "DemoStep", "register", "run_demo"]


@dataclass(frozen=True)
class DemoStep:
    """One `asyncbench run` of the demo: a scenario squeezed to the demo's time budget."""

    scenario: str
    duration_s: float
    repetitions: int
    rate_per_s: float | None = None
    """Peak rate (`run --rate`); None keeps the scenario's."""

    def run_args(self) -> list[str]:
        args = ["--scenario", self.scenario, "--duration", f"{self.duration_s:g}"]
        args += ["--repetitions", str(self.repetitions)]
        return args + (["--rate", f"{self.rate_per_s:g}"] if self.rate_per_s else [])


# Sized for a 2-core machine (load time: 360 s in all, 106 s with --quick). Baseline gets five
# short repetitions because its verdict (response latency) rests on a test across trials only:
# with 5 vs 5 trials one overlapping pair still reaches p = 0.016 (4 vs 4 needs a perfect
# split; 3 vs 3 can never reach p < 0.05).
# --quick decides the same claims in about 2.5 minutes: baseline at 40/s (far below either
# variant's knee) gives 100 requests per 3 s trial after warm-up, 500 per variant, enough for a
# bounded p99 (368); shorter trials let the first trial of the run (a cold stage) decide the
# per-trial p50 test. The outage (4.7 s to 8.2 s of 14 s) leaves 5.8 s to recover (it took 2-3
# s); capacity's 4.8 s stages hold 384 requests at 80/s, so 80/s and 160/s are judged (10-40/s
# are too short, as before).
DEMO_PLANS: dict[str, tuple[DemoStep, ...]] = {
    "full": (
        DemoStep("baseline", duration_s=12, repetitions=5),
        DemoStep("outage", duration_s=60, repetitions=1),
        DemoStep("capacity", duration_s=60, repetitions=1),
    ),
    "quick": (
        DemoStep("baseline", duration_s=3, repetitions=5, rate_per_s=40),
        DemoStep("outage", duration_s=14, repetitions=1),
        DemoStep("capacity", duration_s=24, repetitions=1),
    ),
}


def _asyncbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "asyncbench", *args]


def _run_step(command: list[str], what: str) -> str:
    """Run a child command, streaming its output; return its last line (a path, by contract)."""
    print(f"[demo] {what}: {' '.join(command[2:])}", flush=True)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    last_line = ""
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.strip():
                last_line = line.strip()
            if not line.startswith("asyncbench: error: "):  # re-raised below as the demo's line
                sys.stdout.write(line)
                sys.stdout.flush()
        code = process.wait()
    except KeyboardInterrupt:
        # The child got the same SIGINT and ends its trial cleanly; let it finish that.
        process.wait()
        raise
    if code != 0:
        reason = last_line.removeprefix("asyncbench: error: ") or f"exit code {code}"
        raise AsyncbenchError(f"demo step '{what}' failed: {reason}")
    return last_line


def _stop_stage() -> None:
    _await_stage_stopped(_begin_stopping_stage())


def _begin_stopping_stage() -> subprocess.Popen[str]:
    """`local down` in the background: the report does not need the stage."""
    return subprocess.Popen(
        _asyncbench("local", "down"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _await_stage_stopped(process: subprocess.Popen[str]) -> None:
    stdout, stderr = process.communicate()
    if process.returncode != 0 and "not running" not in (stderr + stdout):
        print(f"[demo] local down: {stderr.strip()}", file=sys.stderr)


def _verdict_lines(index_html: Path) -> list[str]:
    summary_path = index_html.parent / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    verdicts = summary.get("verdicts", {})
    lines = []
    for claim, verdict in verdicts.items():
        if isinstance(verdict, dict):
            text = verdict.get("verdict", "")
            detail = verdict.get("detail") or verdict.get("summary") or ""
            lines.append(f"  {claim}: {text}" + (f" ({detail})" if detail else ""))
        else:
            lines.append(f"  {claim}: {verdict}")
    return lines


def run_demo(*, quick: bool, extra_run_args: Sequence[str] = ()) -> Path:
    """Run the whole demo and return the path of the report's index.html."""
    plan = DEMO_PLANS["quick" if quick else "full"]
    started = time.monotonic()
    try:
        endpoints = _run_step(_asyncbench("local", "up", "--detach"), "local stage up")
    except AsyncbenchError:
        # The stage did not come up (or another one runs, whose owner keeps it): nothing of
        # ours to take down.
        raise
    except BaseException:
        # Ctrl-C or SIGTERM while the stage was starting: it may be up by now, and it is ours.
        _stop_stage()
        raise
    run_dirs: list[str] = []
    try:
        _run_step(_asyncbench("verify", "--endpoints", endpoints), "verify the local stage")
        for number, step in enumerate(plan, start=1):
            command = ["run", "--target", "local", *step.run_args(), "--endpoints", endpoints]
            run_dir = _run_step(
                _asyncbench(*command, *extra_run_args),
                f"scenario {number} of {len(plan)} ({step.scenario})",
            )
            run_dirs.append(run_dir)
    except BaseException:
        print("[demo] local stage down", flush=True)
        _stop_stage()
        raise
    print("[demo] local stage down (while the report is written)", flush=True)
    stopping = _begin_stopping_stage()
    try:
        index_html = Path(_run_step(_asyncbench("report", *run_dirs), "report"))
    finally:
        _await_stage_stopped(stopping)
    minutes = (time.monotonic() - started) / 60
    print(f"[demo] finished in {minutes:.1f} min; verdicts on the seed article's claims:")
    for line in _verdict_lines(index_html):
        print(line)
    print(index_html)
    return index_html


def _terminate(signal_number: int, _frame: FrameType | None) -> None:
    # SIGTERM (a CI timeout, `kill`) would end Python without running `finally`, leaving the
    # detached local stage behind; exiting through SystemExit runs the teardown first.
    raise SystemExit(128 + signal_number)


def _handle(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    run_demo(quick=args.quick)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the main job: a full local comparison of both variants, ending in a report",
        description=(
            "Brings the local stage up, runs the baseline, outage and capacity scenarios on both "
            "variants (interleaved trials), writes one report, and takes the stage down again "
            "(also on Ctrl-C or failure). About 7 minutes on a 2-core machine; --quick about 2.5. "
            "Prints the headline verdicts and, last, the path of the report's index.html."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="shorter trials (about 2.5 minutes)")
    parser.set_defaults(handler=_handle)
