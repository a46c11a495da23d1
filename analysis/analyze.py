"""Everything the report shows about one run, computed once: a frozen bundle of tables."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from analysis import accounting, capacity, cost, engine, lag, latency, plots, recovery
from analysis.compare import EMPTY, Sample, compare_samples, samples
from analysis.load import Run

__all__ = ["DEFAULT_ERROR_THRESHOLD", "DEFAULT_SLO_P99_MS", "Options", "RunAnalysis", "analyze_run"]

DEFAULT_SLO_P99_MS = 1000.0
DEFAULT_ERROR_THRESHOLD = 0.01
CDF_COLUMNS = ("latency_ms", "latency_from_intended_ms", "time_to_result_ms")


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
    variants: tuple[str, ...] = ()
    """The variants the client rows hold, sorted."""
    retried_items: int = 0
    """storage_first items processed more than once (attempts > 1)."""
    cdf: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per latency column: plots.cdf_points (the CDF figures' points)."""
    latency_samples: dict[tuple[str, str], Sample] = field(default_factory=dict)
    """Per (variant, measure): the sample of successful headline answers (for comparisons)."""

    def latency_sample(self, variant: str, measure: str = "latency_ms") -> Sample:
        return self.latency_samples.get((variant, measure), EMPTY)

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


def _latency_tables(
    connection: duckdb.DuckDBPyConnection,
) -> tuple[pd.DataFrame, dict[tuple[str, str], Sample]]:
    """The latency summary and, per (variant, measure), the sample of successful headline
    answers (for comparisons), from the answered rows read once."""
    query = latency.answered(connection, ["variant", "trial", *latency.LATENCY_COLUMNS])
    with engine.materialized(connection, query.sql_query()) as rows:
        table, pooled = latency.latency_summary_and_pooled(connection, rows=rows)
        return table, _latency_samples(connection, rows, pooled)


def _latency_samples(
    connection: duckdb.DuckDBPyConnection,
    rows: duckdb.DuckDBPyRelation,
    pooled: dict[str, pd.DataFrame],
) -> dict[tuple[str, str], Sample]:
    """Per (variant, measure): the sample of ``rows``; ``pooled`` =
    latency.latency_summary_and_pooled's pooled summaries of them."""
    return {
        (str(variant), measure): sample
        for measure in latency.LATENCY_COLUMNS
        for variant, sample in samples(
            connection, rows, "variant", measure, summaries=pooled[measure]
        ).items()
    }


def _retried_items(connection: duckdb.DuckDBPyConnection) -> int:
    """storage_first items processed more than once."""
    found = connection.execute(
        "SELECT count(*) FROM server WHERE variant = 'storage_first' AND coalesce(attempts, 1) > 1"
    ).fetchall()
    return int(found[0][0])


def _analyze_run(run: Run, options: Options, connection: duckdb.DuckDBPyConnection) -> RunAnalysis:
    # Passes read the engine's views (engine.ROW_TABLES) of the run, side by side when the run
    # is small for the memory limit (engine.pass_workers); views over in-memory frames are the
    # connection's own, so those run one after the other on it.
    engine.register_run(connection, run)
    slo = _setting(options.slo_p99_ms, run.scenario, "slo_p99_ms", DEFAULT_SLO_P99_MS)
    threshold = _setting(
        options.error_threshold, run.scenario, "error_threshold", DEFAULT_ERROR_THRESHOLD
    )
    windows = recovery.outage_windows(run.trials)
    workers = 1 if run.frames is not None else engine.pass_workers(connection, run.client_rows)
    with engine.Passes(connection, workers) as passes:
        # The heaviest passes first, so the short ones fill in beside them.
        accounting_ = passes.submit(accounting.tally, run.trials, run.redriven)
        latency_ = passes.submit(_latency_tables)
        timeline = passes.submit(_timeline, run.trials, windows, options.tolerance)
        capacity_ = passes.submit(_capacity, slo, threshold, options.delivery)
        cold_warm = passes.submit(latency.cold_warm_summary)
        lag_summary = passes.submit(lag.lag_summary)
        latency_over_time = passes.submit(latency.latency_over_time)
        cdf = {column: passes.submit(plots.cdf_points, column) for column in CDF_COLUMNS}
        throughput = passes.submit(latency.throughput_over_time)
        usage = passes.submit(cost.usage, run.stack_config)
        send_delay = passes.submit(latency.send_delay_summary)
        per_trial = passes.submit(
            latency.per_trial_quantiles, "latency_from_intended_ms", quantiles=(0.5, 0.9, 0.99)
        )
        lag_by_start = passes.submit(lag.lag_by_start)
        warmup_latency = passes.submit(latency.latency_summary, warmup=True)
        outcomes = passes.submit(latency.outcome_rates)
        lags = passes.submit(lag.lag_counts)
        time_to_result = passes.submit(lag.time_to_result_summary)
        errors_around_outage = passes.submit(recovery.errors_around_outage, windows)
        poison = passes.submit(recovery.poison_delay, options.tolerance)
        variants = passes.submit(latency.variants)
        retried_items = passes.submit(_retried_items)
    latency_table, latency_samples = latency_.result()
    comparison = {
        measure: compare_samples(
            latency_samples.get(("direct", measure), EMPTY),
            latency_samples.get(("storage_first", measure), EMPTY),
            label_a="direct",
            label_b="storage_first",
        )
        for measure in latency.LATENCY_COLUMNS
    }
    backlog, lag_over_time, drain, recovered = timeline.result()
    stages, knees, concurrency = capacity_.result()
    architecture = str(run.stack_config.get("architecture", "arm64"))
    return RunAnalysis(
        run=run,
        slo_p99_ms=slo,
        error_threshold=threshold,
        latency=latency_table,
        warmup_latency=warmup_latency.result(),
        cold_warm=cold_warm.result(),
        outcomes=outcomes.result(),
        throughput=throughput.result(),
        latency_over_time=latency_over_time.result(),
        variant_comparison=comparison,
        lags=lags.result(),
        lag_summary=lag_summary.result(),
        lag_by_start=lag_by_start.result(),
        lag_over_time=lag_over_time,
        backlog=backlog,
        drain=drain,
        send_delay=send_delay.result(),
        per_trial=per_trial.result(),
        time_to_result=time_to_result.result(),
        accounting=accounting_.result(),
        outage_windows=windows,
        errors_around_outage=errors_around_outage.result(),
        recovery=recovered,
        poison=poison.result(),
        stages=stages,
        knees=knees,
        concurrency=concurrency,
        usage=usage.result(),
        costs=cost.cost_per_million(usage.result(), options.prices, architecture),
        cost_assumptions=cost.assumptions(options.prices, usage.result(), run.target),
        currency=str(options.prices.get("currency", "USD")),
        delivery=options.delivery,
        variants=tuple(variants.result()),
        retried_items=retried_items.result(),
        cdf={column: future.result() for column, future in cdf.items()},
        latency_samples=latency_samples,
    )


def _timeline(
    connection: duckdb.DuckDBPyConnection,
    trials: pd.DataFrame,
    windows: pd.DataFrame,
    tolerance: recovery.RecoveryTolerance,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The passes on the trials' time axes: backlog, lag over time, drain and recovery."""
    origins = lag.trial_origins(connection, trials)
    backlog = lag.backlog_over_time(connection, origins)
    return (
        backlog,
        lag.lag_over_time(connection, origins),
        lag.drain_summary(connection, backlog),
        recovery.recovery_times(connection, backlog, windows, tolerance),
    )


def _capacity(
    connection: duckdb.DuckDBPyConnection,
    slo: float,
    threshold: float,
    delivery: capacity.Delivery,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stages, knees and the concurrency at the knees (the stages' windows computed once)."""
    windows = capacity.stage_windows(connection)
    stages = capacity.stage_table(
        connection, slo_p99_ms=slo, error_threshold=threshold, delivery=delivery, windows=windows
    )
    knees = capacity.knee(stages)
    return stages, knees, capacity.concurrency_at_knee(connection, knees, windows)
