"""``summary.json``: the contract's keys per scenario and variant, and the claims' verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pandas as pd

from analysis.accounting import CLASSES
from analysis.analyze import RunAnalysis
from analysis.claims import Verdict
from analysis.lag import LAG_MEASURES

__all__ = ["SUMMARY_VERSION", "build_summary", "variant_summary"]

SUMMARY_VERSION = 1
COUNT_KEYS = ("sent", "accepted", "succeeded", "failed", "parked", "lost", "duplicates")
# Added beside the contract's keys: what the accounting adds (see analysis.accounting).
EXTRA_COUNT_KEYS = ("unresolved", "dropped", "retried", "redriven", "redriven_succeeded")
SUMMARY_QUANTILES = ("p50", "p90", "p99", "p999", "max")


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _verdict(verdict: Verdict) -> dict[str, Any]:
    entry = asdict(verdict)
    entry["p_values"] = {
        key: None if value is None or math.isnan(value) else value
        for key, value in verdict.p_values.items()
    }
    return entry


def _quantiles(row: pd.Series) -> dict[str, Any]:
    return {
        name: {
            "value": _number(row[name]),
            "ci95": [_number(row[f"{name}_lo"]), _number(row[f"{name}_hi"])],
        }
        for name in SUMMARY_QUANTILES
    }


def variant_summary(analysis: RunAnalysis, variant: str) -> dict[str, Any]:
    """One variant's block: counts, latency_ms, lag_ms (storage_first), recovery_s (outage)."""
    block: dict[str, Any] = {}
    accounting = analysis.accounting.loc[analysis.accounting["variant"] == variant]
    row = accounting.iloc[0] if len(accounting) else pd.Series(dtype=object)
    for key in (*COUNT_KEYS, *EXTRA_COUNT_KEYS):
        value = float(row[key]) if key in row and not pd.isna(row[key]) else math.nan
        if math.isnan(value) and key in ("failed", "parked", "unresolved") and key in row:
            value = 0.0  # direct has no such class: nothing is stored to fail or park
        block[key] = None if math.isnan(value) else int(value)  # None: could not be measured
    if len(row):
        # Every request the client meant to send in exactly one class; the counts sum to sent.
        block["accounting"] = {
            name: int(row[name]) for name in CLASSES.get(variant, ()) if not pd.isna(row[name])
        }
        block["dropped_counted"] = bool(row["dropped_counted"])
    if analysis.is_capacity:
        block["capacity"] = _capacity(analysis, variant)
    costs = analysis.costs.loc[analysis.costs["variant"] == variant]
    if len(costs):
        block["cost_per_million"] = {
            str(row.component): _number(row.cost) for row in costs.itertuples(index=False)
        }
    latency = analysis.latency.loc[
        (analysis.latency["variant"] == variant) & (analysis.latency["measure"] == "latency_ms")
    ]
    if len(latency):
        block["latency_ms"] = _quantiles(latency.iloc[0])
    intended = analysis.latency.loc[
        (analysis.latency["variant"] == variant)
        & (analysis.latency["measure"] == "latency_from_intended_ms")
    ]
    if len(intended):
        block["latency_from_intended_ms"] = _quantiles(intended.iloc[0])
    if variant == "storage_first":
        lag = analysis.lag_summary.loc[analysis.lag_summary["measure"] == LAG_MEASURES[-1]]
        if len(lag):
            block["lag_ms"] = _quantiles(lag.iloc[0])
    if analysis.has_outage:
        recovery = analysis.recovery.loc[analysis.recovery["variant"] == variant, "recovery_s"]
        block["recovery_s"] = _number(recovery.max()) if len(recovery) else None
    return block


def _capacity(analysis: RunAnalysis, variant: str) -> dict[str, Any]:
    """knee, sustained and drain rates with their stage, n and repetitions (None: no stage)."""
    rows = analysis.knees.loc[analysis.knees["variant"] == variant]
    if rows.empty:
        return {"knee": None, "sustained": None, "drain": None, "unjudged": ""}
    row = rows.iloc[0]

    def entry(rate: str, prefix: str) -> dict[str, Any] | None:
        value = _number(row[rate])
        if value is None:
            return None
        return {
            "rate_per_s": value,
            "stage": int(row[f"{prefix}_stage"]),
            "n": int(row[f"{prefix}_n"]),
            "repetitions": int(row["repetitions"]),
        }

    return {
        "knee": entry("knee_rate_per_s", "knee"),
        "sustained": entry("sustained_rate_per_s", "sustained"),
        "drain": entry("drain_rate_per_s", "drain"),
        "first_failing_rate_per_s": _number(row["first_failing_rate_per_s"]),
        "unjudged": str(row["unjudged"]),
    }


def build_summary(analyses: Sequence[RunAnalysis], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """The whole summary: runs, per-scenario blocks (latest run of each scenario wins; every
    run is also under ``runs``), and the verdicts."""
    runs: dict[str, Any] = {}
    scenarios: dict[str, Any] = {}
    for analysis in analyses:
        variants = list(analysis.variants)
        blocks = {variant: variant_summary(analysis, variant) for variant in variants}
        runs[analysis.run.run_id] = {
            "scenario": analysis.run.scenario_name,
            "target": analysis.run.target,
            "partial": analysis.run.partial,
            "variants": blocks,
        }
        scenarios[analysis.run.scenario_name] = blocks
    return {
        "summary_version": SUMMARY_VERSION,
        "scenarios": scenarios,
        "runs": runs,
        "verdicts": {verdict.claim: _verdict(verdict) for verdict in verdicts},
    }
