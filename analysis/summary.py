"""``summary.json``: the contract's keys per scenario and variant, and the claims' verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pandas as pd

from analysis.analyze import RunAnalysis
from analysis.claims import Verdict
from analysis.lag import LAG_MEASURES

__all__ = ["SUMMARY_VERSION", "build_summary", "variant_summary"]

SUMMARY_VERSION = 1
COUNT_KEYS = ("sent", "accepted", "succeeded", "failed", "parked", "lost", "duplicates")
SUMMARY_QUANTILES = ("p50", "p90", "p99", "p999", "max")


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


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
    for key in COUNT_KEYS:
        value = float(accounting.iloc[0][key]) if len(accounting) else math.nan
        block[key] = None if math.isnan(value) else int(value)  # None: could not be measured
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


def build_summary(analyses: Sequence[RunAnalysis], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """The whole summary: runs, per-scenario blocks (latest run of each scenario wins; every
    run is also under ``runs``), and the verdicts."""
    runs: dict[str, Any] = {}
    scenarios: dict[str, Any] = {}
    for analysis in analyses:
        variants = sorted(analysis.run.client["variant"].dropna().unique())
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
        "verdicts": {verdict.claim: asdict(verdict) for verdict in verdicts},
    }
