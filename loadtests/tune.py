"""``asyncbench tune``: the cheapest configuration that meets the SLOs at a target rate.

Every configuration of the grid (:mod:`loadtests.tune_grid`) is a "variant" of the experiment:
randomized interleaved trials (:func:`loadtests.trials.plan_configuration_trials`) driven by the
run pipeline (:func:`loadtests.run.execute_run`), each configuration applied in place before
its trial with the same boto3 ``lambda`` calls on AWS and on the local stage
(:mod:`loadtests.tune_control`). The deployed settings are read first and put back at the end,
also after Ctrl-C or a failure. The run folder is a normal one; its manifest's ``tune`` says
which configuration each trial ran under, and ``asyncbench report`` adds the tune tables.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from asyncbench.errors import ConfigError
from asyncbench.paths import reports_dir
from loadtests.progress import ProgressDisplay
from loadtests.scenario import load_scenario
from loadtests.trials import PlannedTrial, draw_seed
from loadtests.tune_control import LambdaSettings, lambda_client_for, mapping_id_for
from loadtests.tune_grid import GRID_KEYS, parse_grid, read_tune_file
from stack.config import StackConfig, from_mapping

__all__ = ["register"]

EXIT_INTERRUPTED = 130
DEFAULT_SCENARIO = "baseline"
DEFAULT_REPETITIONS = 2


def _stack_config(endpoints: Any) -> StackConfig:
    data = endpoints.extra.get("stack_config") or endpoints.extra.get("config")
    if isinstance(data, dict):
        known = {field.name for field in dataclasses.fields(StackConfig)}
        return from_mapping({k: v for k, v in data.items() if k in known}, source="endpoints")
    return StackConfig()


def _tune(args: argparse.Namespace) -> int:
    from loadtests.cli import read_target_endpoints, run_with_interrupts
    from loadtests.run import RunControl, RunRequest, TuneSpec

    file = read_tune_file(args.config) if args.config else {}
    variant = args.variant or file.get("variant") or "storage_first"
    raw_grid = args.grid or file.get("grid") or {}
    parse_grid(raw_grid, variant, StackConfig())  # a wrong grid is named before any stage is
    endpoints_path, endpoints = read_target_endpoints(args.target, args.endpoints)
    base = _stack_config(endpoints)
    grid = parse_grid(raw_grid, variant, base)  # values checked against the deployed config
    rate = args.rate if args.rate is not None else file.get("rate")
    scenario_name = args.scenario or file.get("scenario") or DEFAULT_SCENARIO
    scenario = load_scenario(scenario_name).with_overrides(rate=rate, duration=args.duration)
    if args.work_ms is not None or args.work_kind is not None:
        scenario = dataclasses.replace(
            scenario,
            work_ms=scenario.work_ms if args.work_ms is None else args.work_ms,
            work_kind=args.work_kind or scenario.work_kind,
        )
    repetitions = args.repetitions or file.get("repetitions") or DEFAULT_REPETITIONS
    slo_p99_ms = args.slo_p99_ms or file.get("slo_p99_ms") or scenario.slo_p99_ms
    slo_lag_p99_ms = args.slo_lag_p99_ms or file.get("slo_lag_p99_ms")
    if variant == "direct" and slo_lag_p99_ms is not None:
        raise ConfigError("tune: --slo-lag-p99-ms is for storage_first (direct has no stream)")

    client = lambda_client_for(endpoints)
    function = endpoints.function_name(variant)
    mapping = mapping_id_for(endpoints, client, function) if variant == "storage_first" else None
    settings = LambdaSettings(client, function, mapping)
    deployed = settings.snapshot()
    configurations = {c.label: c.as_dict() for c in grid.configurations()}
    request = RunRequest(
        scenario=scenario,
        endpoints=endpoints,
        repetitions=int(repetitions),
        seed=draw_seed() if args.seed is None else args.seed,
        out_dir=Path(args.out) if args.out else reports_dir(),
        overrides={
            "rate": rate,
            "duration": args.duration,
            "repetitions": repetitions,
            "endpoints_file": str(endpoints_path),
        },
        tune=TuneSpec(
            variant=variant,
            configurations=configurations,
            manifest={
                **grid.to_dict(),
                "rate_per_s": scenario.peak_rate_per_s,
                "slo_p99_ms": float(slo_p99_ms),
                "slo_lag_p99_ms": None if slo_lag_p99_ms is None else float(slo_lag_p99_ms),
                "deployed": {key: deployed.get(key) for key in GRID_KEYS[variant]},
            },
        ),
    )
    control, display = RunControl(), ProgressDisplay()
    applied: list[str | None] = [None]

    def before_trial(planned: PlannedTrial) -> None:
        label = planned.configuration
        if label is not None and label != applied[0]:
            display.message(f"configuration {label}: applying in place")
            settings.apply(configurations[label])
            applied[0] = label

    try:
        outcome = run_with_interrupts(request, control, display, before_trial=before_trial)
    finally:
        display.message("restoring the deployed configuration")
        settings.restore()
    if outcome.partial:
        print(
            f"tune interrupted after {outcome.trials_done} trial(s); the folder is marked partial"
        )
    print(outcome.run_dir)
    return EXIT_INTERRUPTED if control.stop.is_set() else 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    tune = subparsers.add_parser(
        "tune",
        help="find the cheapest configuration that meets the SLOs at a target rate",
        description=(
            "Run every configuration of a grid of stack settings in randomized interleaved "
            "trials, each applied in place (AWS: UpdateEventSourceMapping / "
            "UpdateFunctionConfiguration; the local stage: the same calls on its gateway), and "
            "restore the deployed settings at the end (also on Ctrl-C). `asyncbench report` "
            "then gives the tune table, the cost/latency chart and the recommendation. Prints "
            "the run folder last."
        ),
    )
    tune.add_argument("--target", choices=("local", "aws"), default="local")
    tune.add_argument(
        "--variant",
        choices=tuple(GRID_KEYS),
        help="architecture to tune (default storage_first)",
    )
    tune.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="values to try; repeat for more keys. storage_first: "
        + ", ".join(GRID_KEYS["storage_first"])
        + "; direct: "
        + ", ".join(GRID_KEYS["direct"]),
    )
    tune.add_argument("--rate", type=float, help="target rate per second (the scenario's peak)")
    tune.add_argument(
        "--scenario", help=f"scenario giving the load shape (default {DEFAULT_SCENARIO})"
    )
    tune.add_argument("--duration", type=float, help="seconds per trial (stages scale)")
    tune.add_argument("--work-ms", type=int, help="simulated work per request (body work_ms)")
    tune.add_argument("--work-kind", choices=("io", "cpu"), help="body work_kind")
    tune.add_argument(
        "--repetitions",
        type=_positive_int,
        help=f"trials per configuration (default {DEFAULT_REPETITIONS})",
    )
    tune.add_argument("--slo-p99-ms", type=float, help="response p99 SLO (default: scenario's)")
    tune.add_argument("--slo-lag-p99-ms", type=float, help="stream lag p99 SLO (storage_first)")
    tune.add_argument("--config", help="TOML file with the same settings and a [grid] table")
    tune.add_argument("--endpoints", help="endpoints file (default: the target's)")
    tune.add_argument("--seed", type=int, help="seed of the trial order (default: drawn)")
    tune.add_argument("--out", help="parent folder of the run folder (default: reports/)")
    tune.set_defaults(handler=_tune)
