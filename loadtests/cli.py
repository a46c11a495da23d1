"""``asyncbench scenarios``, ``asyncbench run`` and ``asyncbench worker``.

``run`` installs its own SIGINT handler while it runs: the first Ctrl-C ends the current trial
and collects what exists with a short deadline, a second one skips the rest of collection;
either way the run folder is left valid (``partial: true``), printed, and the exit code is 130.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from asyncbench.errors import RunError
from asyncbench.paths import reports_dir
from loadtests.progress import ProgressDisplay
from loadtests.scenario import Scenario, list_scenarios, load_scenario
from loadtests.trials import draw_seed
from loadtests.wire import DEFAULT_MASTER_PORT
from stack.endpoints import default_endpoints_path, read_endpoints

__all__ = ["read_target_endpoints", "register", "run_with_interrupts", "scenario_table"]

EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"must be a port between 1 and 65535, got {value}")
    return value


def _shape(scenario: Scenario) -> str:
    return " ".join(f"{s.rate_per_s:g}/s x {s.duration_s:g}s" for s in scenario.stages)


def scenario_table(scenarios: list[Scenario]) -> str:
    """The catalogue as a readable table: one block per scenario."""
    lines = []
    for scenario in scenarios:
        outage = (
            f"{scenario.outage.start_s:g}s +{scenario.outage.duration_s:g}s"
            if scenario.outage
            else "-"
        )
        lines += [
            f"{scenario.name}: {scenario.description}",
            f"  stages       {_shape(scenario)}  (total {scenario.duration_s:g} s, "
            f"peak {scenario.peak_rate_per_s:g}/s)",
            f"  requests     work {scenario.work_ms} ms, poison {scenario.poison_share:g}, "
            f"payload {scenario.payload_bytes} B, poll results {scenario.poll_results}, "
            f"client retries {scenario.client_retry.max_attempts}",
            f"  trial        warm-up {scenario.warmup_s:g} s, outage {outage}, "
            f"timeout {scenario.request_timeout_s:g} s, "
            f"collection {scenario.collection_timeout_s:g} s, "
            f"repetitions {scenario.repetitions}",
            f"  capacity     SLO p99 {scenario.slo_p99_ms:g} ms, "
            f"error threshold {scenario.error_threshold:g}",
            "",
        ]
    return "\n".join(lines).rstrip()


def _scenarios(args: argparse.Namespace) -> int:
    print(scenario_table(list_scenarios()))
    return 0


def read_target_endpoints(target: str, path: str | None) -> tuple[Path, Any]:
    """The endpoints file of ``target`` (or ``path``), checked to be for that target."""
    endpoints_path = Path(path) if path else default_endpoints_path(target)  # type: ignore[arg-type]
    endpoints = read_endpoints(endpoints_path, target=target)  # type: ignore[arg-type]
    if endpoints.target != target:
        raise RunError(
            f"{endpoints_path} is for target {endpoints.target!r}, not {target!r}; "
            "pass the right --endpoints or --target"
        )
    return endpoints_path, endpoints


def _run(args: argparse.Namespace) -> int:
    from loadtests.run import RunControl, RunRequest

    scenario = load_scenario(args.scenario).with_overrides(rate=args.rate, duration=args.duration)
    endpoints_path, endpoints = read_target_endpoints(args.target, args.endpoints)
    repetitions = args.repetitions or scenario.repetitions
    request = RunRequest(
        scenario=scenario,
        endpoints=endpoints,
        repetitions=repetitions,
        seed=draw_seed() if args.seed is None else args.seed,
        out_dir=Path(args.out) if args.out else reports_dir(),
        processes=args.processes,
        expect_workers=args.expect_workers,
        master_bind_host=args.master_bind_host,
        master_port=args.master_port,
        web_port=args.web,
        overrides={
            "rate": args.rate,
            "duration": args.duration,
            "repetitions": args.repetitions,
            "endpoints_file": str(endpoints_path),
        },
    )
    control, display = RunControl(), ProgressDisplay()
    outcome = run_with_interrupts(request, control, display)
    if outcome.partial:
        print(f"run interrupted after {outcome.trials_done} trial(s); the folder is marked partial")
    print(outcome.run_dir)
    return EXIT_INTERRUPTED if control.stop.is_set() else 0


def run_with_interrupts(
    request: Any, control: Any, display: ProgressDisplay, **options: Any
) -> Any:
    """``execute_run`` with Ctrl-C ending the trial (first) and skipping collection (second)."""
    from loadtests.run import execute_run

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if not control.stop.is_set():
            control.stop.set()
            display.message(
                "interrupted: ending the trial and collecting what exists "
                "(Ctrl-C again to skip collection)"
            )
        else:
            control.abort.set()

    previous: Any = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return execute_run(request, control=control, display=display, **options)
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker(args: argparse.Namespace) -> int:
    from loadtests.driver import run_worker

    return int(run_worker(args.master_host, args.master_port))


def register(subparsers: argparse._SubParsersAction) -> None:
    scenarios = subparsers.add_parser(
        "scenarios", help="the scenario catalogue with each scenario's parameters"
    )
    scenarios.set_defaults(handler=_scenarios)

    run = subparsers.add_parser(
        "run",
        help="one run: interleaved trials of both variants, per-request records, collection",
        description=(
            "Drive both variants with a scenario in randomized interleaved trials, collect the "
            "server side of every trial and write reports/<run_id>/. Ctrl-C ends the current "
            "trial and leaves a valid run folder marked partial. Prints the run folder last."
        ),
    )
    run.add_argument("--target", choices=("local", "aws"), default="local")
    run.add_argument("--scenario", required=True, help="a scenario name or a TOML file")
    run.add_argument("--rate", type=float, help="peak rate per second (other stages scale)")
    run.add_argument("--duration", type=float, help="total seconds per trial (stages scale)")
    run.add_argument(
        "--repetitions", type=_positive_int, help="trials per variant (default: scenario's)"
    )
    run.add_argument("--processes", type=_positive_int, default=1, help="local Locust workers")
    run.add_argument(
        "--expect-workers",
        type=_non_negative_int,
        default=0,
        help="wait for this many remote `asyncbench worker`s instead of local processes",
    )
    run.add_argument(
        "--master-bind-host",
        default="*",
        help="interface the master listens on for remote workers (default: all)",
    )
    run.add_argument(
        "--master-port",
        type=_port,
        default=DEFAULT_MASTER_PORT,
        help=f"port the master listens on for remote workers (default {DEFAULT_MASTER_PORT})",
    )
    run.add_argument(
        "--web",
        nargs="?",
        const=8089,
        type=_port,
        metavar="PORT",
        help="open Locust's web UI on 127.0.0.1:PORT (default 8089) to watch the trials; "
        "what is recorded does not change",
    )
    run.add_argument("--endpoints", help="endpoints file (default: the target's, in .asyncbench/)")
    run.add_argument("--seed", type=int, help="seed of the trial order (default: drawn, recorded)")
    run.add_argument("--out", help="parent folder of the run folder (default: reports/)")
    run.set_defaults(handler=_run)

    worker = subparsers.add_parser(
        "worker", help="a load-generator worker for a run on another machine"
    )
    worker.add_argument("--master-host", required=True, help="host of the `asyncbench run`")
    worker.add_argument(
        "--master-port", type=_port, default=DEFAULT_MASTER_PORT, help="its --master-port"
    )
    worker.set_defaults(handler=_worker)
