"""Verdicts on the seed article's three claims, from this run's numbers.

1. response latency: storage-first answers the client faster than direct (p50 and p99).
2. no data lost: when processing fails, storage-first loses no accepted request.
3. recovery: after a processor outage, storage-first drains its backlog and lag returns to
   normal without losing anything.

Each verdict is one of VERDICTS and carries a one-line detail with the numbers behind it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.analyze import RunAnalysis

__all__ = ["CLAIMS", "VERDICTS", "Verdict", "judge_claims"]

VERDICTS = ("supported", "not supported", "not significant", "not measured in this run")
CLAIMS = {
    "response_latency": "Storage-first answers the client faster than direct",
    "no_data_lost": "When processing fails, storage-first loses no accepted request",
    "recovery": "After a processor outage, storage-first drains its backlog and recovers",
}


@dataclass(frozen=True)
class Verdict:
    claim: str
    statement: str
    verdict: str
    detail: str


def _latency_verdict(analyses: Sequence[RunAnalysis]) -> Verdict:
    statement = CLAIMS["response_latency"]
    candidates = [a for a in analyses if not a.injects_failures and not a.is_capacity]
    candidates = candidates or list(analyses)
    both = [
        a
        for a in candidates
        if {"direct", "storage_first"} <= set(a.run.client["variant"].unique())
    ]
    if not both:
        return Verdict(
            "response_latency", statement, "not measured in this run", "no run drove both variants"
        )
    analysis = next((a for a in both if a.run.scenario_name == "baseline"), both[0])
    table = analysis.variant_comparison["latency_ms"].set_index("statistic")
    p50, p99 = table.loc["p50"], table.loc["p99"]
    numbers = (
        f"{analysis.run.scenario_name}: p50 {p50['b_value']:.1f} vs {p50['a_value']:.1f} ms "
        f"(ratio {p50['ratio']:.2f}, 95% CI {p50['ratio_lo']:.2f}-{p50['ratio_hi']:.2f}), "
        f"p99 {p99['b_value']:.1f} vs {p99['a_value']:.1f} ms (ratio {p99['ratio']:.2f}); "
        f"across trials: {p50['verdict']}"
    )
    faster = p50["ratio_hi"] < 1 and p99["ratio_hi"] < 1
    slower = p50["ratio_lo"] >= 1
    if p50["verdict"] == "not significant" or not (faster or slower):
        verdict = "not significant"
    elif faster:
        verdict = "supported"
    else:
        verdict = "not supported"
    if verdict != "not significant" and p50["verdict"] == "insufficient trials":
        numbers += " (verdict from request-level intervals only: too few trials for a test)"
    return Verdict("response_latency", statement, verdict, numbers)


def _accounting(analysis: RunAnalysis, variant: str) -> pd.Series | None:
    rows = analysis.accounting.loc[analysis.accounting["variant"] == variant]
    return rows.iloc[0] if len(rows) else None


def _loss_verdict(analyses: Sequence[RunAnalysis]) -> Verdict:
    statement = CLAIMS["no_data_lost"]
    failing = [a for a in analyses if a.injects_failures]
    if not failing:
        return Verdict(
            "no_data_lost", statement, "not measured in this run",
            "no scenario in this report made processing fail (outage, poison or throttle)",
        )  # fmt: skip
    parts, lost_total = [], 0
    for analysis in failing:
        storage_first = _accounting(analysis, "storage_first")
        direct = _accounting(analysis, "direct")
        if storage_first is None or math.isnan(float(storage_first["lost"])):
            continue
        lost_total += int(storage_first["lost"])
        part = (
            f"{analysis.run.scenario_name}: storage_first lost {int(storage_first['lost'])} of "
            f"{int(storage_first['accepted'])} accepted ({int(storage_first['parked'])} parked)"
        )
        if direct is not None:
            part += f"; direct lost {int(direct['lost'])} of {int(direct['sent'])} sent"
        parts.append(part)
    if not parts:
        return Verdict(
            "no_data_lost",
            statement,
            "not measured in this run",
            "storage_first was not driven or none of its items were collected",
        )
    verdict = "supported" if lost_total == 0 else "not supported"
    return Verdict("no_data_lost", statement, verdict, "; ".join(parts))


def _recovery_verdict(analyses: Sequence[RunAnalysis]) -> Verdict:
    statement = CLAIMS["recovery"]
    outages = [a for a in analyses if a.has_outage]
    rows = [
        (a, a.recovery.loc[a.recovery["variant"] == "storage_first"])
        for a in outages
        if (a.recovery["variant"] == "storage_first").any() and not a.lags.empty
    ]
    if not rows:
        return Verdict(
            "recovery",
            statement,
            "not measured in this run",
            "no outage scenario drove storage_first with processed items to measure",
        )
    parts, recovered_all, lost_total = [], True, 0
    for analysis, recovery in rows:
        recovered_all &= bool(recovery["recovered"].all())
        accounting = _accounting(analysis, "storage_first")
        lost_value = float(accounting["lost"]) if accounting is not None else math.nan
        lost = 0 if math.isnan(lost_value) else int(lost_value)
        lost_total += lost
        worst = recovery["recovery_s"].max()
        recovered_text = "never within the data" if math.isnan(worst) else f"{worst:.0f} s"
        direct = analysis.recovery.loc[analysis.recovery["variant"] == "direct", "recovery_s"]
        part = (
            f"{analysis.run.scenario_name}: storage_first recovered in {recovered_text} (worst "
            f"trial), backlog peak {recovery['backlog_peak'].max():.0f}, lost {lost}"
        )
        if recovery["recovered"].all() and not recovery["under_load"].astype(bool).all():
            part += " (drained only after the load stopped)"
        if len(direct) and not direct.isna().any():
            part += f"; direct errors stopped {direct.max():.0f} s after the outage"
        elif len(direct):
            part += "; direct errors did not stop within the data"
        parts.append(part)
    verdict = "supported" if recovered_all and lost_total == 0 else "not supported"
    return Verdict("recovery", statement, verdict, "; ".join(parts))


def judge_claims(analyses: Sequence[RunAnalysis]) -> list[Verdict]:
    """The three verdicts, in CLAIMS order."""
    return [_latency_verdict(analyses), _loss_verdict(analyses), _recovery_verdict(analyses)]
