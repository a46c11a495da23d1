"""The report: one document built from analyses, rendered as index.html (self-contained,
figures embedded as base64 PNG), report.md (figures under figures/) and summary.json."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import plots
from analysis.analyze import RunAnalysis
from analysis.claims import Verdict
from analysis.compare import compare_samples
from analysis.recovery import RecoveryTolerance
from analysis.report_tables import (
    accounting_table,
    dropped_banner,
    headline_table,
    provenance_table,
    redriven_table,
    trial_sends_table,
    verdict_table,
)
from analysis.stats import ALPHA, n_for_bounded
from analysis.tables import (
    UNBOUNDED,
    interval_table,
    to_html,
    to_markdown,
)

__all__ = ["Block", "Report", "build_report", "write_report"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Block:
    """One piece of the document: kind is h1/h2/h3, p, banner, list, table or figure."""

    kind: str
    text: str = ""
    items: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    figure: bytes = b""
    name: str = ""


@dataclass(frozen=True)
class Report:
    title: str
    blocks: tuple[Block, ...]
    summary: dict[str, Any]

    @property
    def figures(self) -> dict[str, bytes]:
        return {block.name: block.figure for block in self.blocks if block.kind == "figure"}


def _figure(plot: plots.PlotData, prefix: str) -> Block:
    # Imported at the first figure, not with this module: matplotlib (30-60 MB resident) would
    # otherwise sit in memory through the analysis, which is where the report's peak is.
    from analysis.render import to_png

    return Block("figure", text=plot.title, figure=to_png(plot), name=f"{prefix}-{plot.key}.png")


def _glance_blocks(
    analyses: Sequence[RunAnalysis], verdicts: Sequence[Verdict], currency: str
) -> list[Block]:
    return [
        Block("h2", "At a glance"),
        Block("table", table=verdict_table(verdicts)),
        Block(
            "p",
            "Latency from the intended send time (coordinated omission corrected) of successful "
            "answers, warm-up excluded; 95% intervals that include the variation between trials; "
            f"'{UNBOUNDED}' = the sample cannot bound that side (a bounded p99 needs "
            f"{n_for_bounded(0.99):,} requests, p99.9 {n_for_bounded(0.999):,}). Processed "
            "result: direct answers after processing; storage_first's 202 comes first and the "
            f"work later. Cost per million requests in {currency}.",
        ),
        Block("table", table=headline_table(analyses)),
    ]


def _claims_blocks(verdicts: Sequence[Verdict]) -> list[Block]:
    table = pd.DataFrame(
        [(v.statement, v.verdict.upper(), v.detail) for v in verdicts],
        columns=["claim", "verdict", "this run's numbers"],
    )
    return [
        Block("h2", "1. The three claims"),
        Block(
            "p",
            "Verdicts use only the numbers below. 'not significant' means the measured "
            "difference could be noise; 'not measured in this run' means no scenario here "
            "exercised the claim.",
        ),
        Block("table", table=table),
    ]


def _accounting_blocks(analysis: RunAnalysis) -> list[Block]:
    accounting = analysis.accounting
    notes = []
    for row in accounting.itertuples(index=False):
        if row.retried:
            notes.append(
                f"{row.variant}: {row.retried} requests were retried by the client "
                f"({row.attempts} attempts in all); each is classed by its last attempt"
            )
        if row.redriven:
            notes.append(
                f"{row.variant}: of which re-driven: {row.redriven} "
                f"({row.redriven_succeeded} SUCCEEDED after the re-drive)"
            )
        if row.rejected_by_status:
            notes.append(f"{row.variant}: refused by status: {row.rejected_by_status}")
        if not row.dropped_counted:
            notes.append(
                f"{row.variant}: dropped sends not counted by this run's load generator "
                "(shown as 0; sent = recorded requests)"
            )
    blocks = [
        Block("h3", "Every request accounted for"),
        Block(
            "p",
            "Each request the client meant to send is in exactly one class (a client retry "
            "belongs to its request; warm-up included). 'unresolved' is not 'lost': collection "
            "stopped waiting before the request settled.",
        ),
        Block("table", table=accounting_table(accounting)),
    ]
    if notes:
        blocks.append(Block("list", items=tuple(notes)))
    trials = trial_sends_table(analysis)
    if not trials.empty:
        blocks += [
            Block("p", "Per trial: what the load generator could not send"),
            Block("table", table=trials),
        ]
    return blocks


def _comparison_table(analysis: RunAnalysis, measure: str) -> pd.DataFrame:
    table = analysis.variant_comparison[measure]
    return table.drop(columns=["a", "b"]).rename(
        columns={
            "a_value": "direct (ms)",
            "b_value": "storage_first (ms)",
            "ratio": "ratio sf/direct",
        }
    )


def _scenario_blocks(
    analysis: RunAnalysis, number: int, tolerance: RecoveryTolerance
) -> list[Block]:
    run = analysis.run
    prefix = f"{number:02d}-{run.scenario_name}"
    shaded = plots.outage_offsets(run.trials)
    blocks = [
        Block("h2", f"{number}. Scenario {run.scenario_name} — run {run.run_id}"),
        Block("p", str(run.scenario.get("description", ""))),
        Block("h3", "Provenance"),
        Block("table", table=provenance_table(analysis)),
        *_accounting_blocks(analysis),
        Block(
            "h3",
            "Response latency of successful answers (ms, warm-up excluded, 95% CI in brackets)",
        ),
        Block("table", table=interval_table(analysis.latency, ["variant", "measure"])),
        Block("h3", "Storage-first vs direct (ratio < 1: storage-first faster)"),
        Block("table", table=_comparison_table(analysis, "latency_ms")),
        Block("p", "From intended send time (coordinated omission corrected):"),
        Block("table", table=_comparison_table(analysis, "latency_from_intended_ms")),
        _figure(plots.latency_cdf_plot(analysis.cdf["latency_ms"]), prefix),
        _figure(
            plots.latency_cdf_plot(
                analysis.cdf["latency_from_intended_ms"], "latency_from_intended_ms"
            ),
            prefix,
        ),
        _figure(plots.latency_time_plot(analysis.latency_over_time, shaded), prefix),
        _figure(plots.rate_time_plot(analysis.throughput, shaded), prefix),
        Block(
            "h3",
            "Per trial: latency from intended send, what the response-latency test compares "
            "(q0500 = p50, q0990 = p99)",
        ),
        Block("table", table=analysis.per_trial),
        Block("h3", "Pacing: how late requests left versus their intended send time"),
        Block("table", table=analysis.send_delay),
        Block("h3", "Outcomes (warm-up excluded)"),
        Block("table", table=analysis.outcomes),
        Block("h3", "Cold vs warm starts (latency ms; start from the stored item)"),
        Block(
            "p",
            "direct: the Lambda that answered the client started cold or warm. storage_first: "
            "the stream processor's start, which happens after the client's 202 and so shows "
            "in the lag table below, not here.",
        ),
        Block("table", table=interval_table(analysis.cold_warm, ["variant", "start"])),
        Block("h3", "Warm-up (excluded from the numbers above)"),
        Block("table", table=interval_table(analysis.warmup_latency, ["variant", "measure"])),
    ]
    if not analysis.lags.empty:
        blocks += [
            Block("h3", "Stream processing lag (storage-first, server clock, ms)"),
            Block("table", table=interval_table(analysis.lag_summary, ["variant", "measure"])),
            Block("p", "accepted -> processed by the processing environment's start:"),
            Block("table", table=interval_table(analysis.lag_by_start, ["variant", "start"])),
            _figure(plots.lag_time_plot(analysis.lag_over_time, shaded), prefix),
            _figure(plots.backlog_plot(analysis.backlog, shaded), prefix),
            Block("table", table=analysis.drain),
        ]
    if not analysis.time_to_result.empty:
        blocks += [
            Block("h3", "Time to result seen by polling clients (ms)"),
            Block("table", table=interval_table(analysis.time_to_result, ["variant"])),
            _figure(
                plots.latency_cdf_plot(analysis.cdf["time_to_result_ms"], "time_to_result_ms"),
                prefix,
            ),
        ]
    if analysis.has_outage:
        blocks += [
            Block("h3", "Failure recovery"),
            Block("p", f"Recovered when: {tolerance.describe()}."),
            Block("table", table=analysis.errors_around_outage),
            Block("table", table=analysis.recovery),
        ]
    redriven = redriven_table(analysis.run.redriven)
    if not redriven.empty:
        blocks += [
            Block("h3", "Re-driven requests (asyncbench redrive)"),
            Block(
                "p",
                "Parked and long-PENDING requests processed again after the run; the accounting "
                "above classes them by their item's status after the re-drive.",
            ),
            Block("table", table=redriven),
        ]
    if analysis.has_poison:
        blocks += [
            Block("h3", "Poison records: healthy requests delayed"),
            Block(
                "p",
                "Delayed = healthy (SUCCEEDED) item whose accepted->processed lag exceeds the "
                "tolerance around the healthy median; excess = lag minus that median.",
            ),
            Block("table", table=analysis.poison),
        ]
    if analysis.is_capacity:
        hints = tuple(
            f"{row.variant}, stage {row.stage} ({row.offered_per_s:g}/s): {row.status}: {row.hint}"
            for row in analysis.stages.itertuples(index=False)
            if row.hint
        )
        blocks += [
            Block("h3", "Capacity"),
            Block(
                "p",
                "A stage is judged only if the load generator delivered it "
                f"({analysis.delivery.describe()}); otherwise it is "
                "generator-limited: never a pass, never the knee. A stage passes when the upper "
                f"95% bound of its p99 from intended send time is under {analysis.slo_p99_ms:g} "
                f"ms and its error share under {analysis.error_threshold:.1%}; with fewer than "
                f"{n_for_bounded(0.99)} requests p99 has no upper bound and the stage is 'too "
                "few requests'. Knee = highest offered rate where this and every lower judged "
                "stage pass. Sustained rate = the same, and processing kept up "
                "(storage_first's backlog grew by at most 5% of the offered rate): a 202 is not "
                "the end of the work. Concurrency by Little's law at the sustained rate "
                "(invocations/s x mean duration).",
            ),
            Block("table", table=analysis.stages.drop(columns=["hint"])),
        ]
        if hints:
            blocks.append(Block("list", items=hints))
        blocks += [
            Block("table", table=analysis.knees),
            Block("table", table=analysis.concurrency),
            _figure(
                plots.rate_vs_p99_plot(analysis.stages, analysis.knees, analysis.slo_p99_ms), prefix
            ),
        ]
    blocks += [
        Block("h3", "Cost per million requests"),
        Block(
            "table",
            table=analysis.usage.drop(columns=["read_basis", "sqs_basis", "log_basis"]),
        ),
        Block("table", table=analysis.costs),
        _figure(plots.cost_plot(analysis.costs), prefix),
        Block("list", items=tuple(analysis.cost_assumptions)),
    ]
    return blocks


def _before_after_blocks(analyses: Sequence[RunAnalysis]) -> list[Block]:
    by_scenario: dict[str, list[RunAnalysis]] = {}
    for analysis in analyses:
        by_scenario.setdefault(analysis.run.scenario_name, []).append(analysis)
    blocks: list[Block] = []
    for scenario, group in by_scenario.items():
        if len(group) < 2:
            continue
        blocks.append(Block("h2", f"Before / after: {scenario}"))
        before = group[0]
        for after in group[1:]:
            for variant in ("direct", "storage_first"):
                table = compare_samples(
                    before.latency_sample(variant),
                    after.latency_sample(variant),
                    label_a=before.run.run_id,
                    label_b=after.run.run_id,
                )
                blocks += [
                    Block(
                        "p",
                        f"{variant}: {after.run.run_id} vs {before.run.run_id} "
                        "(ratio after/before)",
                    ),
                    Block("table", table=table),
                ]
    return blocks


def _methods(tolerance: RecoveryTolerance) -> list[Block]:
    return [
        Block("h2", "Methods"),
        Block(
            "list",
            items=(
                "Every number comes from raw per-request records, never from Locust's statistics.",
                "Quantile 95% intervals: distribution-free binomial order statistics (exact, no "
                "resampling), widened by a Student-t interval over the per-trial quantiles so "
                "they include the variation between trials (coverage >= 90% for p50 and p99 in "
                "simulation, scripts/coverage.py); a side the sample cannot bound is shown as "
                f"'{UNBOUNDED}' (p99 needs {n_for_bounded(0.99):,} requests, p99.9 "
                f"{n_for_bounded(0.999):,}); mean: normal interval; max: as observed.",
                f"Differences across trials: two-sided Mann-Whitney U on per-trial values, alpha "
                f"{ALPHA}; with too few trials to ever reach alpha it says 'insufficient trials'. "
                "The response-latency verdict uses only this test, on latency from the intended "
                "send: supported when p50 and p99 are both significantly faster, not supported "
                "when either is significantly slower, otherwise not significant.",
                "Loss: unresolved requests (not settled when collection stopped) are never "
                "counted lost; with unresolved requests and none lost, or with no failure "
                "observed, the loss verdict is 'not measured in this run'.",
                "Ratio intervals: from the two statistics' own intervals (conservative).",
                "Lag is computed on the server clock only; client latency on the client clock.",
                f"Recovery: {tolerance.describe()}.",
            ),
        ),
    ]


def build_report(
    analyses: Sequence[RunAnalysis],
    verdicts: Sequence[Verdict],
    summary: dict[str, Any],
    *,
    tolerance: RecoveryTolerance | None = None,
    progress: Progress | None = None,
    extra_blocks: Sequence[Block] = (),
) -> Report:
    """The whole document for one or several runs; ``extra_blocks`` (the tune section) come
    after the scenarios."""
    tolerance = tolerance or RecoveryTolerance()
    scenarios = ", ".join(dict.fromkeys(a.run.scenario_name for a in analyses))
    title = f"asyncbench report: {scenarios}"
    blocks: list[Block] = [Block("h1", title)]
    if any(a.run.partial for a in analyses):
        partial = ", ".join(a.run.run_id for a in analyses if a.run.partial)
        blocks.append(
            Block(
                "banner",
                f"PARTIAL RUN: {partial} was interrupted; numbers cover what was recorded.",
            )
        )
    if any(a.run.target == "local" for a in analyses):
        blocks.append(
            Block(
                "banner",
                "Local stage: these results were measured on the local stage (DynamoDB Local and "
                "local Lambda/API Gateway emulation), not on AWS.",
            )
        )
    single = [a.run.run_id for a in analyses if a.run.manifest.get("interleaved") is False]
    if single:
        blocks.append(
            Block(
                "banner",
                f"NOT INTERLEAVED: {', '.join(single)} drove its variant(s) on their own (plain "
                "Locust), not in randomized interleaved trials: drift of the machine or the "
                "account between variants is not controlled, so compare variants with care.",
            )
        )
    dropped = dropped_banner(analyses)
    if dropped:
        blocks.append(Block("banner", dropped))
    blocks += _glance_blocks(analyses, verdicts, analyses[0].currency if analyses else "")
    blocks += _claims_blocks(verdicts)
    for number, analysis in enumerate(analyses, start=2):
        if progress:
            progress(f"rendering {analysis.run.scenario_name} ({analysis.run.run_id})")
        blocks += _scenario_blocks(analysis, number, tolerance)
    blocks += extra_blocks
    blocks += _before_after_blocks(analyses)
    blocks += _methods(tolerance)
    return Report(title=title, blocks=tuple(blocks), summary=summary)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.82em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}.banner{background:#fff3cd;border:2px solid #d39e00;padding:.6em;
font-weight:bold;margin:.6em 0}img{max-width:100%}
figure{display:inline-block;width:49%;margin:.5em 0;vertical-align:top}
figcaption{font-size:.85em;color:#555}
"""


def render_html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in report.blocks:
        text = html.escape(block.text)
        if block.kind in ("h1", "h2", "h3"):
            parts.append(f"<{block.kind}>{text}</{block.kind}>")
        elif block.kind == "p":
            parts.append(f"<p>{text}</p>")
        elif block.kind == "banner":
            parts.append(f"<div class='banner'>{text}</div>")
        elif block.kind == "list":
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>"
            )
        elif block.kind == "table" and block.table is not None:
            parts.append(to_html(block.table))
        elif block.kind == "figure":
            data = base64.b64encode(block.figure).decode("ascii")
            parts.append(
                f"<figure><img alt='{text}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{text}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "".join(parts)


def render_markdown(report: Report) -> str:
    lines = []
    for block in report.blocks:
        if block.kind in ("h1", "h2", "h3"):
            lines.append("#" * int(block.kind[1]) + " " + block.text + "\n")
        elif block.kind == "p":
            lines.append(block.text + "\n")
        elif block.kind == "banner":
            lines.append(f"> **{block.text}**\n")
        elif block.kind == "list":
            lines.append("".join(f"- {item}\n" for item in block.items))
        elif block.kind == "table" and block.table is not None:
            lines.append(to_markdown(block.table))
        elif block.kind == "figure":
            lines.append(f"![{block.text}](figures/{block.name})\n")
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def write_report(out_dir: Path, report: Report) -> Path:
    """Write index.html, report.md, summary.json and figures/ into ``out_dir``; returns
    index.html's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    for name, data in report.figures.items():
        (figures / name).write_bytes(data)
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (out_dir / "summary.json").write_text(
        json.dumps(report.summary, indent=2, default=_json_default, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    index = out_dir / "index.html"
    index.write_text(render_html(report), encoding="utf-8")
    return index
