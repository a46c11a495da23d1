"""Tables the report shows, built from analyses: pure DataFrame (or text) builders, no
rendering. The report module arranges them into blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.accounting import CLASSES
from analysis.analyze import RunAnalysis
from analysis.claims import Verdict
from analysis.tables import format_interval, format_value

__all__ = [
    "accounting_table",
    "dropped_banner",
    "headline_table",
    "provenance_table",
    "redriven_table",
    "trial_sends_table",
    "verdict_table",
]


def _revision(suite: dict[str, Any]) -> str:
    revision = suite.get("revision") or suite.get("git_revision") or "?"
    return f"{revision} (uncommitted changes)" if suite.get("dirty") else str(revision)


def _when(stamp: Any) -> str:
    """The manifest's times are {"iso": ..., "ms": ...}; older writers used a plain string."""
    if isinstance(stamp, dict):
        return str(stamp.get("iso") or stamp.get("ms") or "?")
    return "?" if stamp is None else str(stamp)


def _pairs(values: Any) -> str:
    """A mapping as "key = value, ..." (nested mappings inline), never a JSON blob."""
    if not isinstance(values, dict):
        return str(values)
    return ", ".join(
        f"{key} = {_pairs(value) if isinstance(value, dict) else value}"
        for key, value in sorted(values.items())
    )


def _scenario_rows(scenario: dict[str, Any]) -> list[tuple[str, Any]]:
    """The scenario as readable rows: stages as "20 s at 10/s", the outage as a window."""
    rows: list[tuple[str, Any]] = []
    stages = scenario.get("stages") or []
    if stages:
        rows.append(
            (
                "scenario stages",
                ", ".join(
                    f"{stage.get('duration_s', '?'):g} s at {stage.get('rate_per_s', '?'):g}/s"
                    if isinstance(stage, dict)
                    else str(stage)
                    for stage in stages
                ),
            )
        )
    outage = scenario.get("outage")
    if isinstance(outage, dict) and outage:
        rows.append(
            (
                "scenario outage",
                f"from {outage.get('start_s', '?')} s for {outage.get('duration_s', '?')} s",
            )
        )
    skip = {"stages", "outage", "description", "name"}
    rest = {key: value for key, value in scenario.items() if key not in skip and value is not None}
    rows.append(("scenario settings", _pairs(rest)))
    return rows


def provenance_table(analysis: RunAnalysis) -> pd.DataFrame:
    manifest = analysis.run.manifest
    suite = manifest.get("suite") or {}
    config = analysis.run.stack_config
    rows = [
        ("run id", analysis.run.run_id),
        ("folder", str(analysis.run.path)),
        ("target", f"{analysis.run.target} ({manifest.get('region', '?')})"),
        ("suite", f"{suite.get('version', '?')} @ {_revision(suite)}"),
        (
            "started / ended",
            f"{_when(manifest.get('started_at'))} / {_when(manifest.get('ended_at'))}",
        ),
        ("seed", manifest.get("seed", "?")),
        ("partial", analysis.run.partial),
        ("machine", _pairs(manifest.get("machine", {}))),
        ("stack config", _pairs(config)),
        *_scenario_rows(analysis.run.scenario),
        ("SLO p99 / error threshold", f"{analysis.slo_p99_ms:g} ms / {analysis.error_threshold:g}"),
    ]
    return pd.DataFrame(rows, columns=["field", "value"])


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    rows = []
    for verdict in verdicts:
        p_values = ", ".join(
            f"{name} {'–' if value is None else f'{value:.3f}'}"
            for name, value in verdict.p_values.items()
        )
        rows.append(
            {
                "claim": verdict.statement,
                "verdict": verdict.verdict.upper(),
                "n (requests)": ", ".join(f"{k} {v:,}" for k, v in verdict.n.items()),
                "trials": " vs ".join(str(v) for v in verdict.trials.values()),
                "test": verdict.test,
                "p": p_values,
            }
        )
    return pd.DataFrame(rows)


def _row_of(frame: pd.DataFrame, **keys: str) -> pd.Series | None:
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        if key not in frame:
            return None
        mask &= frame[key] == value
    chosen = frame.loc[mask]
    return chosen.iloc[0] if len(chosen) else None


def headline_table(analyses: Sequence[RunAnalysis]) -> pd.DataFrame:
    """One row per scenario and variant: what a reviewer asks first."""
    rows = []
    for analysis in analyses:
        for variant in analysis.variants:
            latency = _row_of(analysis.latency, variant=variant, measure="latency_from_intended_ms")
            account = _row_of(analysis.accounting, variant=variant)
            lag = _row_of(analysis.lag_summary, variant=variant, measure="accepted_to_processed_ms")
            knee = _row_of(analysis.knees, variant=variant) if analysis.is_capacity else None
            total = _row_of(analysis.costs, variant=variant, component="total")
            if variant == "direct" and latency is not None:
                result = f"{format_value(latency['p50'])} (the answer)"
            elif latency is not None and lag is not None:
                result = f"~{format_value(float(latency['p50']) + float(lag['p50']))} (202 + lag)"
            else:
                result = "–"
            lost = "–"
            if account is not None and not pd.isna(account["lost"]):
                lost = f"{int(account['lost']):,} of {int(account['sent']):,}"
                if variant == "storage_first" and account["unresolved"]:
                    lost += f" ({int(account['unresolved']):,} unresolved)"
            knee_text = ""
            if knee is not None:
                knee_text = (
                    "not found"
                    if pd.isna(knee["knee_rate_per_s"])
                    else f"{knee['knee_rate_per_s']:g}/s"
                )
                if variant == "storage_first":
                    sustained = knee["sustained_rate_per_s"]
                    knee_text += (
                        "; processing keeps up to "
                        + ("no judged stage" if pd.isna(sustained) else f"{sustained:g}/s")
                        + f", drains {knee['drain_rate_per_s']:.0f}/s"
                    )
                if knee["unjudged"]:
                    knee_text += f" (unjudged: {knee['unjudged']})"
            rows.append(
                {
                    "scenario": analysis.run.scenario_name,
                    "variant": variant,
                    "p50 ms": "–"
                    if latency is None
                    else format_interval(latency["p50"], latency["p50_lo"], latency["p50_hi"]),
                    "p99 ms": "–"
                    if latency is None
                    else format_interval(latency["p99"], latency["p99_lo"], latency["p99_hi"]),
                    "processed result p50 ms": result,
                    "lag p99 ms": "–" if lag is None else format_value(lag["p99"]),
                    "lost (data never stored)": lost,
                    "knee": knee_text,
                    "cost / million": "–" if total is None else f"{total['cost']:.2f}",
                }
            )
    return pd.DataFrame(rows)


_CLASS_MEANING = {
    "succeeded": "processed, item SUCCEEDED",
    "failed": "item FAILED with its error recorded (e.g. poison)",
    "parked": "on the failure destination: data in the table, processing abandoned",
    "unresolved": "still PENDING (or not read) when collection hit its deadline",
    "lost": "answered 202 and gone once collection had settled",
    "rejected": "non-2xx answer",
    "rejected_permanently": "4xx: the client was told, nothing stored (poison, invalid body)",
    "failed_transiently": "5xx or 429 (outage 502, throttle): nothing stored",
    "no_answer": "timeout or connection error",
    "dropped": "a slot of the schedule the load generator never sent",
}


def accounting_table(accounting: pd.DataFrame) -> pd.DataFrame:
    """Rows: every class, then sent and the headline lost; columns: the variants' counts."""
    names = list(dict.fromkeys(name for classes in CLASSES.values() for name in classes))
    rows = []
    indexed = accounting.set_index("variant")
    for name in [*names, "sent", "lost (data never reached the table)"]:
        key = "lost" if name.startswith("lost (") else name
        row: dict[str, Any] = {"class": name, "meaning": _CLASS_MEANING.get(name, "")}
        if name == "lost":
            row["class"] = "lost (202, gone)"
        if name == "sent":
            row["meaning"] = "requests the client meant to send: the classes above sum to it"
        if key == "lost" and name != "lost":
            row["meaning"] = "the seed's sense of loss, both variants"
        for variant in indexed.index:
            value = indexed.loc[variant, key] if key in indexed else math.nan
            if name == "lost" and variant != "storage_first":
                value = math.nan
            row[str(variant)] = "" if pd.isna(value) else int(value)
        rows.append(row)
    table = pd.DataFrame(rows)
    variants = [str(v) for v in indexed.index]
    keep = table[variants].apply(lambda column: column != "").any(axis=1)
    return table.loc[keep].reset_index(drop=True)


def trial_sends_table(analysis: RunAnalysis) -> pd.DataFrame:
    """Per trial: rows written, late and dropped sends ("not counted" when the generator did
    not count them), workers lost, items unfinished at collection, and a flag."""
    trials = analysis.run.trials
    if trials.empty:
        return pd.DataFrame()
    columns = [
        "variant",
        "trial",
        "rows_written",
        "late_sends",
        "dropped_sends",
        "workers_lost",
        "unfinished",
    ]
    table = trials[[c for c in columns if c in trials]].copy()
    table["dropped_sends"] = [
        "not counted" if pd.isna(value) else int(value) for value in table["dropped_sends"]
    ]
    table["flag"] = [
        ", ".join(
            (["DROPPED SENDS"] if isinstance(dropped, int) and dropped > 0 else [])
            + (["WORKER LOST"] if not pd.isna(workers) and workers > 0 else [])
        )
        for dropped, workers in zip(table["dropped_sends"], trials["workers_lost"], strict=True)
    ]
    return table.reset_index(drop=True)


def dropped_banner(analyses: Sequence[RunAnalysis]) -> str:
    """One line naming every trial that dropped sends or lost a load-generator worker ("" when
    none did)."""
    parts = []
    for analysis in analyses:
        trials = analysis.run.trials
        if trials.empty:
            continue
        dropped = trials["dropped_sends"].fillna(0)
        lost_workers = trials["workers_lost"].fillna(0)
        for row, sends, workers in zip(
            trials.itertuples(index=False), dropped, lost_workers, strict=True
        ):
            if sends <= 0 and workers <= 0:
                continue
            what = [f"{int(sends)} sends dropped"] if sends > 0 else []
            what += [f"{int(workers)} worker(s) lost"] if workers > 0 else []
            parts.append(
                f"{analysis.run.scenario_name} trial {row.trial} ({row.variant}): "
                + ", ".join(what)
            )
    if not parts:
        return ""
    return (
        "DROPPED SENDS: the load generator never sent part of the schedule in "
        + "; ".join(parts)
        + ". Those trials offered less load than planned."
    )


def redriven_table(redriven: pd.DataFrame) -> pd.DataFrame:
    """Per variant, source and status before -> after: how many requests a re-drive processed
    again (the last re-drive of each request counts), and how many of those re-drives failed."""
    columns = ["variant", "source", "status_before", "status_after", "requests", "redrive_errors"]
    if redriven.empty:
        return pd.DataFrame(columns=columns)
    last = redriven.sort_values("redriven_at_ms").drop_duplicates(
        ["variant", "request_id"], keep="last"
    )
    keys = ["variant", "source", "status_before", "status_after"]
    table = (
        last.assign(failed=last["error"].notna())
        .groupby(keys, dropna=False)
        .agg(requests=("request_id", "size"), redrive_errors=("failed", "sum"))
        .reset_index()
    )
    return table[columns]
