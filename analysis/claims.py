"""Verdicts on the seed article's three claims, from this run's numbers.

1. response latency: storage-first answers the client faster than direct (p50 and p99).
2. no data lost: when processing fails, storage-first loses no accepted request.
3. recovery: after a processor outage, storage-first drains its backlog and lag returns to
   normal without losing anything.

Each verdict is one of VERDICTS and carries a one-line detail with the numbers behind it, the
test it comes from, n and trials. Claim 1 is decided by a test across trials only (the trial
is the unit of replication), on latency from intended send time, both directions alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from analysis.analyze import RunAnalysis
from analysis.lag import LAG_MEASURES
from analysis.stats import ALPHA

__all__ = ["CLAIMS", "TRIALS_NEEDED", "VERDICTS", "Verdict", "judge_claims"]

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
    test: str = ""
    """The test or rule the verdict comes from, with its unit of replication."""
    n: dict[str, int] = field(default_factory=dict)
    """Requests per variant the verdict rests on."""
    trials: dict[str, int] = field(default_factory=dict)
    p_values: dict[str, float | None] = field(default_factory=dict)


TRIALS_NEEDED = 4  # 4 vs 4 is the smallest design in which Mann-Whitney U can reach p < 0.05


def _p(value: float) -> float | None:
    return None if math.isnan(float(value)) else float(value)


def _judge(name: str, row: pd.Series) -> tuple[str, str]:
    """("faster" | "slower" | "not significant" | "too few trials" | "no data", reason)."""
    if row["verdict"] == "no data":
        return "no data", f"{name}: no data"
    ratio = float(row["ratio"])
    numbers = f"{name} {row['b_value']:.1f} vs {row['a_value']:.1f} ms (ratio {ratio:.2f}"
    if row["verdict"] == "insufficient trials":
        return "too few trials", numbers + ", no test)"
    numbers += f", p = {row['p_value']:.3f})"
    if row["verdict"] != "significant" or ratio == 1:
        return "not significant", numbers + " not significant"
    return ("faster", numbers + " faster") if ratio < 1 else ("slower", numbers + " slower")


def _time_to_result(analysis: RunAnalysis) -> str:
    """storage_first's time to a processed result beside direct's response time (p50)."""
    latency = analysis.latency.set_index(["variant", "measure"])
    key = "latency_from_intended_ms"
    if ("direct", key) not in latency.index or ("storage_first", key) not in latency.index:
        return ""
    direct = float(latency.loc[("direct", key), "p50"])
    answer = float(latency.loc[("storage_first", key), "p50"])
    polled = analysis.time_to_result.set_index("variant")
    if "storage_first" in polled.index:
        result = float(polled.loc["storage_first", "p50"])
        how = "seen by polling clients"
    else:
        lag = analysis.lag_summary.loc[analysis.lag_summary["measure"] == LAG_MEASURES[-1]]
        if lag.empty:
            return ""
        result = answer + float(lag["p50"].iloc[0])
        how = "202 p50 + accepted->processed lag p50 (server clock), an estimate"
    return (
        f"; time to a processed result: storage_first p50 ~{result:.0f} ms ({how}) vs "
        f"direct's response {direct:.0f} ms (processed when answered); storage_first's "
        f"{answer:.0f} ms is a 202, not finished work"
    )


def _latency_verdict(analyses: Sequence[RunAnalysis]) -> Verdict:
    statement = CLAIMS["response_latency"]
    candidates = [a for a in analyses if not a.injects_failures and not a.is_capacity]
    candidates = candidates or list(analyses)
    both = [a for a in candidates if {"direct", "storage_first"} <= set(a.variants)]
    if not both:
        return Verdict(
            "response_latency", statement, "not measured in this run", "no run drove both variants"
        )
    analysis = next((a for a in both if a.run.scenario_name == "baseline"), both[0])
    table = analysis.variant_comparison["latency_from_intended_ms"].set_index("statistic")
    p50, p99 = table.loc["p50"], table.loc["p99"]
    (p50_call, p50_text), (p99_call, p99_text) = _judge("p50", p50), _judge("p99", p99)
    calls = {p50_call, p99_call}
    trials = {
        "direct": int(p50["trials_a"]) if not pd.isna(p50["trials_a"]) else 0,
        "storage_first": int(p50["trials_b"]) if not pd.isna(p50["trials_b"]) else 0,
    }
    latency = analysis.latency.loc[analysis.latency["measure"] == "latency_from_intended_ms"]
    n = {str(row.variant): int(row.n) for row in latency.itertuples(index=False)}
    test = (
        "two-sided Mann-Whitney U on per-trial p50 and p99 of latency from intended send "
        f"({trials['direct']} vs {trials['storage_first']} trials), alpha {ALPHA}"
    )
    if "no data" in calls:
        verdict, why = "not measured in this run", "a variant has no successful answers"
    elif "slower" in calls:
        verdict, why = "not supported", "storage_first is significantly slower"
    elif calls == {"faster"}:
        verdict, why = "supported", "storage_first is significantly faster at p50 and p99"
    else:
        verdict = "not significant"
        if "too few trials" in calls:
            fewest = min(trials.values())
            why = f"too few trials: {fewest} per variant, the test needs >= {TRIALS_NEEDED}"
        else:
            undecided = [name for name, call in (("p50", p50_call), ("p99", p99_call))
                         if call != "faster"]  # fmt: skip
            why = f"no significant difference at {' and '.join(undecided)}"
    detail = (
        f"{why}. {analysis.run.scenario_name}, storage_first vs direct from intended send: "
        f"{p50_text}; {p99_text}{_time_to_result(analysis)}"
    )
    return Verdict(
        "response_latency", statement, verdict, detail, test=test, n=n, trials=trials,
        p_values={"p50": _p(p50.get("p_value", math.nan)),
                  "p99": _p(p99.get("p_value", math.nan))},
    )  # fmt: skip


def _accounting(analysis: RunAnalysis, variant: str) -> pd.Series | None:
    rows = analysis.accounting.loc[analysis.accounting["variant"] == variant]
    return rows.iloc[0] if len(rows) else None


def _count(row: pd.Series | None, key: str) -> int:
    if row is None or key not in row or pd.isna(row[key]):
        return 0
    return int(row[key])


def _failures_observed(analysis: RunAnalysis) -> str:
    """What this run saw fail ("" when nothing did): the loss claim is only tested then."""
    storage_first = _accounting(analysis, "storage_first")
    direct = _accounting(analysis, "direct")
    retried_items = analysis.retried_items
    seen = {
        "storage_first failed": _count(storage_first, "failed"),
        "parked": _count(storage_first, "parked"),
        "re-driven": _count(storage_first, "redriven"),
        "storage_first items retried": retried_items,
        "direct transient failures": _count(direct, "failed_transiently"),
        "direct permanent rejections": _count(direct, "rejected_permanently"),
    }
    return ", ".join(f"{name} {count}" for name, count in seen.items() if count)


def _loss_verdict(analyses: Sequence[RunAnalysis]) -> Verdict:
    statement = CLAIMS["no_data_lost"]
    test = "count: accepted (202) requests whose item is gone once collection settled"
    failing = [a for a in analyses if a.injects_failures]
    if not failing:
        return Verdict(
            "no_data_lost", statement, "not measured in this run",
            "no scenario in this report made processing fail (outage, poison or throttle)",
            test=test,
        )  # fmt: skip
    parts, lost_total, unresolved_total, observed_any = [], 0, 0, False
    n: dict[str, int] = {}
    for analysis in failing:
        storage_first = _accounting(analysis, "storage_first")
        direct = _accounting(analysis, "direct")
        if storage_first is None or int(storage_first["items_collected"]) == 0:
            continue
        lost, unresolved = _count(storage_first, "lost"), _count(storage_first, "unresolved")
        lost_total += lost
        unresolved_total += unresolved
        n["storage_first"] = n.get("storage_first", 0) + int(storage_first["sent"])
        observed = _failures_observed(analysis)
        observed_any |= bool(observed)
        part = (
            f"{analysis.run.scenario_name}: storage_first lost {lost} of "
            f"{int(storage_first['accepted'])} accepted ({_count(storage_first, 'parked')} "
            f"parked, {unresolved} unresolved at the collection deadline"
        )
        if _count(storage_first, "redriven"):
            part += f", {_count(storage_first, 'redriven')} re-driven"
        part += ")"
        if direct is not None:
            n["direct"] = n.get("direct", 0) + int(direct["sent"])
            part += (
                f"; direct: data of {_count(direct, 'lost')} of {int(direct['sent'])} requests "
                f"never stored ({_count(direct, 'rejected_permanently')} rejected permanently, "
                f"{_count(direct, 'failed_transiently')} failed transiently, "
                f"{_count(direct, 'no_answer')} no answer)"
            )
        part += f"; failures observed: {observed or 'none'}"
        parts.append(part)
    if not parts:
        return Verdict(
            "no_data_lost",
            statement,
            "not measured in this run",
            "storage_first was not driven or none of its items were collected",
            test=test,
        )
    detail = "; ".join(parts)
    if lost_total > 0:
        verdict = "not supported"
    elif unresolved_total > 0:
        verdict = "not measured in this run"
        detail = (
            f"{unresolved_total} accepted requests were unresolved when collection hit its "
            f"deadline, so loss cannot be told from slow processing. {detail}"
        )
    elif not observed_any:
        verdict = "not measured in this run"
        detail = f"failures were injected but none was observed. {detail}"
    else:
        verdict = "supported"
    return Verdict("no_data_lost", statement, verdict, detail, test=test, n=n)


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
        lost = _count(accounting, "lost")
        lost_total += lost
        worst = recovery["recovery_s"].max()
        recovered_text = "never within the data" if math.isnan(worst) else f"{worst:.0f} s"
        direct = analysis.recovery.loc[analysis.recovery["variant"] == "direct", "recovery_s"]
        part = (
            f"{analysis.run.scenario_name}: storage_first recovered in {recovered_text} (worst "
            f"trial), backlog peak {recovery['backlog_peak'].max():.0f}, lost {lost}"
        )
        if _count(accounting, "unresolved"):
            part += f", {_count(accounting, 'unresolved')} unresolved at the collection deadline"
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
