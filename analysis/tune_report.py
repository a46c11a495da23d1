"""The tune section of the report: the table, the chart, the recommendation, the model.

Built from a :class:`analysis.tune.TuneResult` and the run; :mod:`analysis.report` appends the
blocks, :mod:`analysis.cli` adds :func:`tune_summary` to summary.json under ``tune``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.capacity_model import (
    InvocationCost,
    fit_invocation_cost,
    invocation_points,
    plan_table,
    sustained_rate_per_s,
)
from analysis.load import Run
from analysis.tune import TuneResult, tune_plot

__all__ = ["MODEL_RATES", "model_tables", "tune_blocks", "tune_summary"]

MODEL_RATES = (1_000.0, 10_000.0, 100_000.0)
DEFAULT_SETTINGS = {"parallelization_factor": 1, "batch_size": 100, "batch_concurrency": 1}


def _settings(run: Run, result: TuneResult, label: str) -> dict[str, Any]:
    deployed = dict((run.manifest.get("tune") or {}).get("deployed") or {})
    merged = {**DEFAULT_SETTINGS, **run.stack_config, **deployed}
    return {**merged, **result.configurations.get(label, {})}


def _shards(metrics: pd.DataFrame) -> int:
    """Shards seen in the run's mapping metrics (the local stage tags them), at least 1."""
    if "dimensions" not in metrics or metrics.empty:
        return 1
    tagged = metrics.loc[metrics["metric"] == "BatchSize", "dimensions"].dropna()
    shards = {text for text in tagged if "shard_id" in str(text)}
    if not shards:
        return 1
    import json

    return max(1, len({json.loads(text).get("shard_id") for text in shards}))


def model_tables(run: Run, result: TuneResult) -> tuple[InvocationCost, pd.DataFrame, pd.DataFrame]:
    """The fitted invocation cost, predicted vs measured per configuration, and the
    capacity-planning table for :data:`MODEL_RATES` (storage-first tune runs)."""
    metrics = result.metrics
    points = invocation_points(metrics)
    by_trial = {
        int(k): str(v) for k, v in (run.manifest["tune"].get("trial_configurations") or {}).items()
    }
    points = points.assign(
        batch_concurrency=[
            int(_settings(run, result, by_trial.get(int(t), ""))["batch_concurrency"])
            for t in points["trial"]
        ]
    )
    cost = fit_invocation_cost(points)
    shards = _shards(metrics)
    rows = []
    for row in result.table.itertuples(index=False):
        settings = _settings(run, result, str(row.configuration))
        predicted = sustained_rate_per_s(
            cost,
            shards=shards,
            parallelization_factor=int(settings["parallelization_factor"]),
            batch_size=int(settings["batch_size"]),
            batch_concurrency=int(settings["batch_concurrency"]),
        )
        saturated = bool(row.backlog_growth_per_s > 0.05 * row.delivered_rate_per_s)
        measured = float(row.processing_rate_per_s)
        rows.append(
            {
                "configuration": row.configuration,
                "saturated": saturated,
                "measured_rate_per_s": measured,
                "predicted_rate_per_s": predicted,
                # Only a saturated configuration measures its capacity; the others only show
                # that the capacity is above what was offered.
                "error": (predicted - measured) / measured if saturated and measured else math.nan,
                "prediction_consistent": bool(predicted >= 0.9 * measured)
                if not saturated
                else None,
            }
        )
    predicted_table = pd.DataFrame(rows)
    best = result.recommendations.get("balanced", {}).get("configuration")
    settings = _settings(run, result, best or "")
    direct_duration = float(
        metrics.loc[
            (metrics["variant"] == "direct") & (metrics["metric"] == "Duration"), "value"
        ].mean()
    )
    if not math.isfinite(direct_duration):
        direct_duration = cost.overhead_ms + cost.per_record_ms
    plan = plan_table(
        MODEL_RATES,
        cost,
        batch_size=int(settings["batch_size"]),
        batch_concurrency=int(settings["batch_concurrency"]),
        direct_duration_ms=direct_duration,
        memory_mb=int(settings.get("memory_mb") or 256),
    )
    return cost, predicted_table, plan


def _display(table: pd.DataFrame) -> pd.DataFrame:
    return table.replace({np.nan: None}).round(2) if not table.empty else table


def tune_blocks(run: Run, result: TuneResult) -> list[Any]:
    """Report blocks of one tune run."""
    from analysis.render import to_png
    from analysis.report import Block

    blocks: list[Any] = [
        Block("h2", f"Tune: {result.variant} at {result.rate_per_s:g} requests/s"),
        Block(
            "p",
            f"{len(result.table)} configurations in randomized interleaved trials, each applied "
            f"in place before its trial. SLOs: response p99 <= {result.slo_p99_ms:g} ms"
            + (
                f", stream lag p99 <= {result.slo_lag_p99_ms:g} ms"
                if result.slo_lag_p99_ms is not None
                else ""
            )
            + (
                "; storage_first must also keep up (backlog growth below 5% of the delivered rate)."
                if result.variant == "storage_first"
                else "."
            )
            + " Rates per second, latencies in ms, cost per million requests; 'pareto' marks "
            "the configurations no other beats on both cost and the key p99.",
        ),
        Block("table", table=_display(result.table)),
    ]
    measures = (
        ["lag_p99_ms", "response_p99_ms"]
        if result.variant == "storage_first"
        else ["response_p99_ms"]
    )
    if result.variant == "direct":
        measures = ["response_p99_ms"]
    for measure in measures:
        plot = tune_plot(result, measure)
        blocks.append(Block("figure", text=plot.title, figure=to_png(plot), name=f"{plot.key}.png"))
    recommendation_rows = [
        {
            "strategy": strategy,
            "configuration": entry.get("configuration") or entry.get("note"),
            "runner-up": entry.get("runner_up"),
            "difference to runner-up": entry.get("difference"),
            "deploy with": entry.get("set_line"),
        }
        for strategy, entry in result.recommendations.items()
    ]
    blocks += [
        Block("h3", "Recommendation"),
        Block(
            "p",
            "cheapest = lowest cost meeting the SLOs; fastest = lowest key p99 meeting them; "
            "balanced = lowest sum of cost and key p99, each relative to its best. The "
            "difference to the runner-up is a Mann-Whitney test across trials on the figure "
            "the strategy ranks by ('too few trials' when the trials cannot decide).",
        ),
        Block("table", table=pd.DataFrame(recommendation_rows)),
    ]
    if result.variant == "storage_first" and not result.table.empty:
        try:
            cost, predicted, plan = model_tables(run, result)
        except ValueError:
            return blocks
        blocks += [
            Block("h3", "Capacity model (a model, not a measurement)"),
            Block(
                "p",
                f"Fitted on {cost.points} {cost.basis} records: per-batch overhead "
                f"{cost.overhead_ms:.1f} ms, per-record cost {cost.per_record_ms:.1f} ms per "
                "wave of batch_concurrency records. Predicted sustained processing rate = "
                "shards x parallelization_factor x batch_size / (overhead + ceil(batch_size / "
                "batch_concurrency) x per-record). Only saturated configurations measure their "
                "capacity; for the others the prediction must lie above what they processed.",
            ),
            Block("table", table=_display(predicted)),
            Block(
                "p",
                "Extrapolated with the balanced configuration's batch settings. Assumptions: "
                "one stream shard per DynamoDB partition, a partition takes 1,000 write units/s "
                "(AWS's documented limit), 2 writes of <= 1 KB per request; Lambda polls each "
                "shard 4 times a second (mean wait 125 ms); lag = poll + 1.5 batch durations; "
                "direct concurrency by Little's law (rate x mean duration) against the default "
                "account limit of 1,000, with the run's mean direct Duration or, in a "
                "storage-first tune run without direct traffic, the model's one-record "
                "invocation; compute cost = Lambda GB-seconds only.",
            ),
            Block("table", table=_display(plan)),
        ]
    return blocks


def tune_summary(run: Run, result: TuneResult) -> dict[str, Any]:
    """summary.json's ``tune``: the table, the recommendation and (storage-first) the model."""
    summary = result.to_dict()
    if result.variant == "storage_first" and not result.table.empty:
        try:
            cost, predicted, plan = model_tables(run, result)
        except ValueError:
            return summary
        summary["model"] = {
            "overhead_ms": cost.overhead_ms,
            "per_record_ms": cost.per_record_ms,
            "basis": cost.basis,
            "points": cost.points,
            "predicted": predicted.replace({np.nan: None}).to_dict(orient="records"),
            "plan": plan.replace({np.nan: None, np.inf: None}).to_dict(orient="records"),
        }
    return summary
