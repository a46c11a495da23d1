"""Everything the report shows about one run, computed once: a frozen bundle of tables."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from analysis import accounting, capacity, cost, engine, lag, latency, recovery
from analysis.compare import compare_groups
from analysis.load import Run

__all__ = ["DEFAULT_ERROR_THRESHOLD", "DEFAULT_SLO_P99_MS", "Options", "RunAnalysis", "analyze_run"]

DEFAULT_SLO_P99_MS = 1000.0
DEFAULT_ERROR_THRESHOLD = 0.01


@dataclass(frozen=True)
class Options:
    """Knobs of an analysis; None means "the scenario's own value, else the default"."""

    prices: dict[str, Any]
    slo_p99_ms: float | None = None
    error_threshold: float | None = None
    tolerance: recovery.RecoveryTolerance = field(default_factory=recovery.RecoveryTolerance)
    delivery: capacity.Delivery = field(default_factory=capacity.Delivery)
    memory_limit: str | None = None
    """The engine's memory limit ("2GB"; None: analysis.engine's default)."""


@dataclass(frozen=True)
class RunAnalysis:
    """The tables of one run (see each producing module for columns and units)."""

    run: Run
    slo_p99_ms: float
    error_threshold: float
    latency: pd.DataFrame
    warmup_latency: pd.DataFrame
    cold_warm: pd.DataFrame
    outcomes: pd.DataFrame
    throughput: pd.DataFrame
    latency_over_time: pd.DataFrame
    variant_comparison: dict[str, pd.DataFrame]
    lags: pd.DataFrame
    lag_summary: pd.DataFrame
    lag_by_start: pd.DataFrame
    lag_over_time: pd.DataFrame
    backlog: pd.DataFrame
    drain: pd.DataFrame
    send_delay: pd.DataFrame
    per_trial: pd.DataFrame
    time_to_result: pd.DataFrame
    accounting: pd.DataFrame
    outage_windows: pd.DataFrame
    errors_around_outage: pd.DataFrame
    recovery: pd.DataFrame
    poison: pd.DataFrame
    stages: pd.DataFrame
    knees: pd.DataFrame
    concurrency: pd.DataFrame
    usage: pd.DataFrame
    costs: pd.DataFrame
    cost_assumptions: list[str]
    currency: str = "USD"
    delivery: capacity.Delivery = field(default_factory=capacity.Delivery)

    @property
    def has_outage(self) -> bool:
        return not self.outage_windows.empty

    @property
    def has_poison(self) -> bool:
        return float(self.run.scenario.get("poison_share") or 0) > 0

    @property
    def is_capacity(self) -> bool:
        """Capacity analysis applies when the scenario steps its rate up (two or more stages
        at rising rates) or declares ``capacity = true``, whatever its name."""
        scenario = self.run.scenario
        if isinstance(scenario.get("capacity"), bool):
            return bool(scenario["capacity"])
        stages = scenario.get("stages") or []
        rates = [float(stage.get("rate_per_s", 0)) for stage in stages if isinstance(stage, dict)]
        return len(rates) >= 2 and any(b > a for a, b in itertools.pairwise(rates))

    @property
    def injects_failures(self) -> bool:
        return self.has_outage or self.has_poison or self.run.scenario_name == "throttle"


def _setting(override: float | None, scenario: dict[str, Any], key: str, default: float) -> float:
    if override is not None:
        return float(override)
    value = scenario.get(key)
    return float(value) if isinstance(value, int | float) and not math.isnan(value) else default


def analyze_run(run: Run, options: Options) -> RunAnalysis:
    """Compute every table of one run (pure: the Run is not modified)."""
    with engine.connect(options.memory_limit) as connection:
        return _analyze_run(run, options, connection)


def _analyze_run(run: Run, options: Options, connection: duckdb.DuckDBPyConnection) -> RunAnalysis:
    client, server, parked, metrics = run.client, run.server, run.parked, run.metrics
    # Passes that run in the engine read these views (engine.ROW_TABLES), not the frames.
    engine.register_frames(connection, client=client, server=server, parked=parked, metrics=metrics)
    slo = _setting(options.slo_p99_ms, run.scenario, "slo_p99_ms", DEFAULT_SLO_P99_MS)
    threshold = _setting(
        options.error_threshold, run.scenario, "error_threshold", DEFAULT_ERROR_THRESHOLD
    )
    headline = latency.answered_rows(
        client, ["variant", "trial", "latency_ms", "latency_from_intended_ms"]
    )
    comparison = {
        measure: compare_groups(
            headline.loc[headline["variant"] == "direct"],
            headline.loc[headline["variant"] == "storage_first"],
            measure,
            label_a="direct",
            label_b="storage_first",
        )
        for measure in ("latency_ms", "latency_from_intended_ms")
    }
    origins = lag.trial_origins(connection, run.trials)
    backlog = lag.backlog_over_time(connection, origins)
    windows = recovery.outage_windows(run.trials)
    stages = capacity.stage_table(
        connection, slo_p99_ms=slo, error_threshold=threshold, delivery=options.delivery
    )
    knees = capacity.knee(stages)
    usage = cost.usage(connection, run.stack_config)
    architecture = str(run.stack_config.get("architecture", "arm64"))
    return RunAnalysis(
        run=run,
        slo_p99_ms=slo,
        error_threshold=threshold,
        latency=latency.latency_summary(client, connection=connection),
        warmup_latency=latency.latency_summary(client, warmup=True, connection=connection),
        cold_warm=latency.cold_warm_summary(client, server),
        outcomes=latency.outcome_rates(client),
        throughput=latency.throughput_over_time(client),
        latency_over_time=latency.latency_over_time(client),
        variant_comparison=comparison,
        lags=lag.lag_counts(connection),
        lag_summary=lag.lag_summary(connection),
        lag_by_start=lag.lag_by_start(connection),
        lag_over_time=lag.lag_over_time(connection, origins),
        backlog=backlog,
        drain=lag.drain_summary(connection, backlog),
        send_delay=latency.send_delay_summary(client),
        per_trial=latency.per_trial_quantiles(
            client, "latency_from_intended_ms", quantiles=(0.5, 0.9, 0.99)
        ),
        time_to_result=lag.time_to_result_summary(connection),
        accounting=accounting.tally(connection, run.trials, run.redriven),
        outage_windows=windows,
        errors_around_outage=recovery.errors_around_outage(connection, windows),
        recovery=recovery.recovery_times(connection, backlog, windows, options.tolerance),
        poison=recovery.poison_delay(connection, options.tolerance),
        stages=stages,
        knees=knees,
        concurrency=capacity.concurrency_at_knee(
            connection, knees, capacity.stage_windows(connection)
        ),
        usage=usage,
        costs=cost.cost_per_million(usage, options.prices, architecture),
        cost_assumptions=cost.assumptions(options.prices, usage, run.target),
        currency=str(options.prices.get("currency", "USD")),
        delivery=options.delivery,
    )
