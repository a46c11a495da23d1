"""The tune report's tables: per configuration, its recommendation per strategy, the frontier.

A tune run (``asyncbench tune``) drives one variant under several configurations; its manifest's
``tune.trial_configurations`` says which trials ran under which. Each configuration's trials are
analysed with the run analysis's own functions (latency, lag, backlog, cost) on the rows of
those trials alone, so the figures mean what they mean in any report.

A storage-first configuration meets the SLOs when its response p99 and stream lag p99 are
within theirs and it keeps up (its backlog grows by less than 5% of the delivered rate).

Strategies (a table, as aws-lambda-power-tuning keeps them): *cheapest* = lowest cost per
million among the configurations that meet the SLOs; *fastest* = lowest key p99 (stream lag for
storage-first, response for direct) among those; *balanced* = lowest sum of cost and key p99,
each divided by its best value among those. The difference to the runner-up is tested across
trials (:func:`analysis.stats.mann_whitney` on the per-trial figure the strategy ranks by).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import cost, engine, lag, latency
from analysis.load import Run
from analysis.plots import PlotData, Series
from analysis.stats import mann_whitney
from loadtests.tune_grid import set_line

__all__ = [
    "TUNE_COLUMNS",
    "TuneResult",
    "analyze_tune",
    "is_tune_run",
    "pareto_frontier",
    "recommend",
    "tune_plot",
]

TUNE_COLUMNS = [
    "configuration", "trials", "delivered_rate_per_s", "response_p50_ms", "response_p99_ms",
    "lag_p50_ms", "lag_p99_ms", "backlog_growth_per_s", "processing_rate_per_s",
    "max_concurrency", "cost_per_million", "meets_slo", "pareto",
]  # fmt: skip

LAG_MEASURE = "accepted_to_processed_ms"
KEEP_UP_SHARE = 0.05
"""A storage-first configuration keeps up when its backlog grows by less than this share of
the delivered rate (items/s); one that does not fails the SLOs (its lag grows with the run)."""
STRATEGIES = ("cheapest", "fastest", "balanced")


def is_tune_run(run: Run) -> bool:
    return isinstance(run.manifest.get("tune"), dict)


@dataclass(frozen=True)
class TuneResult:
    variant: str
    rate_per_s: float
    slo_p99_ms: float
    slo_lag_p99_ms: float | None
    table: pd.DataFrame
    per_trial: pd.DataFrame
    """One row per trial: configuration, response/lag p99, cost per million."""
    recommendations: dict[str, dict[str, Any]]
    configurations: dict[str, dict[str, Any]]
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    """The run's metric rows (the tune report's model fits them)."""

    @property
    def key_measure(self) -> str:
        return "lag_p99_ms" if self.variant == "storage_first" else "response_p99_ms"

    def to_dict(self) -> dict[str, Any]:
        """What summary.json carries under ``tune``."""
        rows = self.table.replace({np.nan: None}).to_dict(orient="records")
        return {
            "variant": self.variant,
            "rate_per_s": self.rate_per_s,
            "slo_p99_ms": self.slo_p99_ms,
            "slo_lag_p99_ms": self.slo_lag_p99_ms,
            "configurations": self.configurations,
            "table": rows,
            "recommendations": self.recommendations,
        }


ROW_TABLES = ("client", "server", "parked", "metrics")


def _trial_subset(tables: Mapping[str, pd.DataFrame], trials: list[int]) -> dict[str, pd.DataFrame]:
    """The rows of ``trials`` of each table (the run's per-request tables and ``trials``)."""

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.loc[frame["trial"].isin(trials)] if "trial" in frame else frame

    return {name: keep(frame) for name, frame in tables.items()}


def _response_summary(client: pd.DataFrame) -> pd.DataFrame:
    with engine.connect() as connection:
        engine.register_frames(connection, client=client)
        return latency.latency_summary(connection)


def _quantile(summary: pd.DataFrame, measure: str, name: str) -> float:
    rows = summary.loc[summary["measure"] == measure]
    return float(rows[name].iloc[0]) if not rows.empty else math.nan


def _delivered_rate(client: pd.DataFrame, trials: pd.DataFrame) -> float:
    rates = []
    for row in trials.itertuples(index=False):
        start = row.warmup_until_ms if pd.notna(row.warmup_until_ms) else row.started_at_ms
        seconds = (float(row.ended_at_ms) - float(start)) / 1000.0
        sent = client.loc[(client["trial"] == row.trial) & (~client["warmup"].fillna(False))]
        if seconds > 0:
            rates.append(len(sent) / seconds)
    return float(np.mean(rates)) if rates else math.nan


def _processing_rate(server: pd.DataFrame, variant: str) -> float:
    """Terminal items per second between the first and the last processed, averaged over
    trials: the drain rate when a backlog built up, the delivered rate when it did not."""
    items = server.loc[(server["variant"] == variant) & server["processed_at_ms"].notna()]
    rates = []
    for _trial, group in items.groupby("trial"):
        span_s = (group["processed_at_ms"].max() - group["processed_at_ms"].min()) / 1000.0
        if span_s > 0:
            rates.append((len(group) - 1) / span_s)
    return float(np.mean(rates)) if rates else math.nan


def _backlog_growth(server: pd.DataFrame, parked: pd.DataFrame, trials: pd.DataFrame) -> float:
    """Items per second the backlog grew over each trial's measured load (mean over trials)."""
    with engine.frames_connection(server=server, parked=parked) as connection:
        origins = lag.trial_origins(connection, trials)
        backlog = lag.backlog_over_time(connection, origins)
    slopes = []
    for row in trials.itertuples(index=False):
        series = backlog.loc[backlog["trial"] == row.trial]
        if series.empty:
            continue
        start = float(row.warmup_until_ms if pd.notna(row.warmup_until_ms) else row.started_at_ms)
        end = float(row.ended_at_ms)
        at = series["at_ms"].to_numpy(dtype=float)
        values = series["backlog"].to_numpy(dtype=float)
        if end > start:
            growth = np.interp(end, at, values) - np.interp(start, at, values)
            slopes.append(growth / ((end - start) / 1000.0))
    return float(np.mean(slopes)) if slopes else math.nan


def _cost(parts: Mapping[str, pd.DataFrame], stack_config: dict[str, Any],
          prices: dict[str, Any], variant: str) -> float:  # fmt: skip
    tables = {name: parts[name] for name in ("client", "server", "parked", "metrics")}
    with engine.frames_connection(**tables) as connection:
        usage = cost.usage(connection, stack_config)
    costs = cost.cost_per_million(usage, prices, str(stack_config.get("architecture", "arm64")))
    total = costs.loc[(costs["variant"] == variant) & (costs["component"] == "total"), "cost"]
    return float(total.iloc[0]) if not total.empty else math.nan


def _configuration_row(
    run: Run, tables: Mapping[str, pd.DataFrame], label: str, trials: list[int],
    settings: dict[str, Any], variant: str, prices: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    parts = _trial_subset(tables, trials)
    stack_config = {**run.stack_config, **settings}
    responses = _response_summary(parts["client"])
    responses = responses.loc[responses["variant"] == variant]
    with engine.frames_connection(server=parts["server"]) as connection:
        lag_rows = (
            lag.lag_summary(connection, variant)
            if not lag.lag_counts(connection, variant).empty
            else pd.DataFrame(columns=["measure"])
        )
    concurrency = parts["metrics"].loc[
        (parts["metrics"]["variant"] == variant)
        & (parts["metrics"]["metric"] == "ConcurrentExecutions"),
        "value",
    ]
    row = {
        "configuration": label,
        "trials": len(trials),
        "delivered_rate_per_s": _delivered_rate(parts["client"], parts["trials"]),
        "response_p50_ms": _quantile(responses, "latency_ms", "p50"),
        "response_p99_ms": _quantile(responses, "latency_ms", "p99"),
        "lag_p50_ms": _quantile(lag_rows, LAG_MEASURE, "p50"),
        "lag_p99_ms": _quantile(lag_rows, LAG_MEASURE, "p99"),
        "backlog_growth_per_s": _backlog_growth(parts["server"], parts["parked"], parts["trials"])
        if variant == "storage_first"
        else math.nan,
        "processing_rate_per_s": _processing_rate(parts["server"], variant),
        "max_concurrency": float(concurrency.max()) if not concurrency.empty else math.nan,
        "cost_per_million": _cost(parts, stack_config, prices, variant),
    }
    per_trial = []
    for trial in trials:
        one = _trial_subset(tables, [trial])
        answered = latency.answered_rows(one["client"], ["variant", "latency_ms"])
        answered = answered.loc[answered["variant"] == variant, "latency_ms"]
        with engine.frames_connection(server=one["server"]) as connection:
            trial_lags = lag.lag_frame(connection, variant)[LAG_MEASURE]
        per_trial.append(
            {
                "configuration": label,
                "trial": trial,
                "response_p99_ms": float(answered.quantile(0.99)) if len(answered) else math.nan,
                "lag_p99_ms": float(trial_lags.quantile(0.99)) if len(trial_lags) else math.nan,
                "cost_per_million": _cost(one, stack_config, prices, variant),
            }
        )
    return row, per_trial


def pareto_frontier(points: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for the rows no other row beats on both ``x`` and ``y`` (lower is better)."""
    values = points[[x, y]].to_numpy(dtype=float)
    flags = []
    for index, (vx, vy) in enumerate(values):
        if not (math.isfinite(vx) and math.isfinite(vy)):
            flags.append(False)
            continue
        dominated = any(
            other != index and ox <= vx and oy <= vy and (ox < vx or oy < vy)
            for other, (ox, oy) in enumerate(values)
        )
        flags.append(not dominated)
    return pd.Series(flags, index=points.index, dtype=bool)


def _score(strategy: str, table: pd.DataFrame, key: str) -> Callable[[pd.DataFrame], pd.Series]:
    best_cost = float(table["cost_per_million"].min())
    best_key = float(table[key].min())

    def score(frame: pd.DataFrame) -> pd.Series:
        if strategy == "cheapest":
            return frame["cost_per_million"]
        if strategy == "fastest":
            return frame[key]
        return frame["cost_per_million"] / best_cost + frame[key] / best_key

    return score


def recommend(
    table: pd.DataFrame, per_trial: pd.DataFrame, key: str,
    configurations: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    eligible = table.loc[table["meets_slo"]]
    recommendations: dict[str, dict[str, Any]] = {}
    for strategy in STRATEGIES:
        if eligible.empty:
            recommendations[strategy] = {
                "configuration": None,
                "note": "no configuration met the SLOs",
            }
            continue
        score = _score(strategy, eligible, key)
        ranked = eligible.assign(score=score(eligible)).sort_values("score")
        best = str(ranked["configuration"].iloc[0])
        entry: dict[str, Any] = {
            "configuration": best,
            "settings": configurations.get(best, {}),
            "set_line": set_line(configurations.get(best, {})),
            "runner_up": None,
            "difference": "no runner-up",
        }
        if len(ranked) > 1:
            runner = str(ranked["configuration"].iloc[1])
            trial_score = _score(strategy, eligible, key)
            a = trial_score(per_trial.loc[per_trial["configuration"] == best])
            b = trial_score(per_trial.loc[per_trial["configuration"] == runner])
            test = mann_whitney(a, b)
            entry["runner_up"] = runner
            entry["p_value"] = None if math.isnan(test.p_value) else test.p_value
            entry["difference"] = (
                "too few trials" if test.verdict == "insufficient trials" else test.verdict
            )
        recommendations[strategy] = entry
    return recommendations


def analyze_tune(run: Run, prices: dict[str, Any]) -> TuneResult:
    """The tune table, per-trial figures and recommendations of a tune run."""
    spec = run.manifest["tune"]
    variant = str(spec.get("variant", "storage_first"))
    configurations = {str(k): dict(v) for k, v in (spec.get("configurations") or {}).items()}
    by_trial = {int(k): str(v) for k, v in (spec.get("trial_configurations") or {}).items()}
    recorded = set(run.trials["trial"].astype(int)) if not run.trials.empty else set(by_trial)
    # A tune run is small (a few configurations' trials): its tables are read as frames.
    tables = {**engine.run_tables(run, ROW_TABLES), "trials": run.trials}
    rows, per_trial = [], []
    for label, settings in configurations.items():
        trials = sorted(t for t, name in by_trial.items() if name == label and t in recorded)
        if not trials:
            continue
        row, trial_rows = _configuration_row(run, tables, label, trials, settings, variant, prices)
        rows.append(row)
        per_trial += trial_rows
    table = pd.DataFrame(
        rows, columns=[c for c in TUNE_COLUMNS if c not in ("meets_slo", "pareto")]
    )
    slo = float(spec.get("slo_p99_ms") or run.scenario.get("slo_p99_ms") or 1000.0)
    slo_lag = spec.get("slo_lag_p99_ms")
    meets = table["response_p99_ms"] <= slo
    if variant == "storage_first":
        # A configuration whose backlog grows does not carry the rate, whatever its lag SLO.
        meets &= ~(table["backlog_growth_per_s"] > KEEP_UP_SHARE * table["delivered_rate_per_s"])
        if slo_lag is not None:
            meets &= table["lag_p99_ms"] <= float(slo_lag)
    table["meets_slo"] = meets.astype(bool)
    key = "lag_p99_ms" if variant == "storage_first" else "response_p99_ms"
    table["pareto"] = pareto_frontier(table, "cost_per_million", key) if len(table) else []
    trials_frame = pd.DataFrame(
        per_trial, columns=["configuration", "trial", "response_p99_ms", "lag_p99_ms",
                            "cost_per_million"],
    )  # fmt: skip
    return TuneResult(
        variant=variant,
        rate_per_s=float(spec.get("rate_per_s") or math.nan),
        slo_p99_ms=slo,
        slo_lag_p99_ms=None if slo_lag is None else float(slo_lag),
        table=table,
        per_trial=trials_frame,
        recommendations=recommend(table, trials_frame, key, configurations),
        configurations=configurations,
        metrics=tables["metrics"],
    )


def tune_plot(result: TuneResult, measure: str) -> PlotData:
    """Cost per million against ``measure`` (lag_p99_ms / response_p99_ms), one point per
    configuration, the Pareto frontier drawn through its points and labelled."""
    table = result.table.dropna(subset=["cost_per_million", measure])
    series = [
        Series(str(row.configuration), np.array([getattr(row, measure)]),
               np.array([row.cost_per_million]))
        for row in table.itertuples(index=False)
    ]  # fmt: skip
    frontier = table.loc[pareto_frontier(table, "cost_per_million", measure)].sort_values(measure)
    series.append(
        Series("Pareto frontier", frontier[measure].to_numpy(dtype=float),
               frontier["cost_per_million"].to_numpy(dtype=float))
    )  # fmt: skip
    markers = tuple(
        (float(row[measure]), float(row["cost_per_million"]), str(row["configuration"]))
        for _, row in frontier.iterrows()
    )
    name = "stream lag p99" if measure == "lag_p99_ms" else "response p99"
    return PlotData(
        key=f"tune-cost-vs-{measure.replace('_', '-')}",
        title=f"Cost per million vs {name} per configuration (frontier circled)",
        xlabel=f"{name} (ms)",
        ylabel="cost per million requests",
        series=tuple(series),
        markers=markers,
    )
