"""Per-invocation figures of an AWS run from the functions' own CloudWatch Logs.

Lambda prints one REPORT line per invocation (duration, billed duration, memory, and the INIT
duration on a cold start); the handlers print one structured line per invocation
(``processor.runtime.invocation_fields``: batch size, run ids, handler error). Both carry the
invocation's request id, which pairs them. They become METRICS rows in the same long format,
with the same metric names and units, as the local stage's metrics log, so the analysis reads
both targets alike:

=================  ============  ==============================================
metric             unit          per invocation
=================  ============  ==============================================
Invocations        Count         1
Duration           Milliseconds  REPORT ``Duration``
BilledDuration     Milliseconds  REPORT ``Billed Duration`` (INIT included where AWS bills it)
InitDuration       Milliseconds  REPORT ``Init Duration`` (cold starts only)
ColdStart          Count         1 on a cold start
MaxMemoryUsed      Megabytes     REPORT ``Max Memory Used``
BatchSize          Count         records in the batch (storage_first)
Errors             Count         1 when the handler raised or REPORT says error/timeout
Timeouts           Count         1 when REPORT says ``Status: timeout``
=================  ============  ==============================================

Each invocation goes to the one trial of its variant whose window holds its start (the
structured line's clock, else the REPORT line's timestamp); an invocation that names only other
runs is not this run's and is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOGS_SOURCE",
    "TrialSpan",
    "invocation_rows",
    "parse_report",
    "read_log_events",
    "trial_of",
]

LOGS_SOURCE = "cloudwatch_logs"
# The ``record`` of the handlers' line: processor.runtime.INVOCATION_RECORD (nothing imports the
# processor package but the Lambda runtime; a test keeps the two equal).
INVOCATION_RECORD = "asyncbench.invocation"
# Server and collector clocks: an invocation a little outside its trial's window is still its.
SPAN_SLACK_MS = 2_000.0
REPORT_PATTERN = '"REPORT RequestId"'
INVOCATION_PATTERN = f'"{INVOCATION_RECORD}"'

_REPORT_FIELDS = {
    "Duration": "duration_ms",
    "Billed Duration": "billed_ms",
    "Init Duration": "init_ms",
    "Max Memory Used": "memory_mb",
}
_FIELD = re.compile(r"(Duration|Billed Duration|Init Duration|Max Memory Used): ([0-9.]+)")


@dataclass(frozen=True)
class TrialSpan:
    """Where a trial's server-side work happened: from its start until its collection ended."""

    trial: int
    variant: str
    start_ms: float
    end_ms: float


def parse_report(message: str) -> dict[str, Any] | None:
    """A REPORT line's request id, figures and status; None for any other line."""
    if not message.startswith("REPORT RequestId:"):
        return None
    parts = message.split("\t")
    request_id = parts[0].removeprefix("REPORT RequestId:").strip()
    figures: dict[str, Any] = {"request_id": request_id, "status": None}
    for part in parts[1:]:
        part = part.strip()
        match = _FIELD.fullmatch(part.removesuffix(" ms").removesuffix(" MB"))
        if match:
            figures[_REPORT_FIELDS[match.group(1)]] = float(match.group(2))
        elif part.startswith("Status:"):
            figures["status"] = part.removeprefix("Status:").strip()
    return figures if "duration_ms" in figures else None


def _structured(message: str) -> dict[str, Any] | None:
    start = message.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(message[start:])
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("record") != INVOCATION_RECORD:
        return None
    return value


def trial_of(spans: Sequence[TrialSpan], variant: str, at_ms: float) -> int | None:
    """The trial of ``variant`` whose span holds ``at_ms`` (the nearest, within the slack)."""
    best: tuple[float, int] | None = None
    for span in spans:
        if span.variant != variant:
            continue
        if span.start_ms <= at_ms <= span.end_ms:
            return span.trial
        distance = min(abs(at_ms - span.start_ms), abs(at_ms - span.end_ms))
        if distance <= SPAN_SLACK_MS and (best is None or distance < best[0]):
            best = (distance, span.trial)
    return best[1] if best else None


def _figures(
    variant: str, report: Mapping[str, Any], line: Mapping[str, Any]
) -> list[tuple[str, float, str]]:
    """(metric, value, unit) of one invocation, named as the local metrics log names them."""
    figures: list[tuple[str, float, str]] = [
        ("Invocations", 1, "Count"),
        ("Duration", report["duration_ms"], "Milliseconds"),
    ]
    if "billed_ms" in report:
        figures.append(("BilledDuration", report["billed_ms"], "Milliseconds"))
    if "init_ms" in report:
        figures += [("InitDuration", report["init_ms"], "Milliseconds"), ("ColdStart", 1, "Count")]
    if "memory_mb" in report:
        figures.append(("MaxMemoryUsed", report["memory_mb"], "Megabytes"))
    if variant == "storage_first" and line.get("batchSize") is not None:
        figures.append(("BatchSize", float(line["batchSize"]), "Count"))
    status = str(report.get("status") or "").lower()
    if line.get("error") or status in {"error", "timeout"}:
        figures.append(("Errors", 1, "Count"))
    if status == "timeout":
        figures.append(("Timeouts", 1, "Count"))
    return figures


def invocation_rows(
    variant: str,
    function: str,
    events: Iterable[Mapping[str, Any]],
    spans: Sequence[TrialSpan],
    run_id: str,
) -> list[dict[str, Any]]:
    """METRICS rows (run_id and trial included) from a function's log events."""
    reports: list[tuple[float, dict[str, Any]]] = []
    lines: dict[str, dict[str, Any]] = {}
    for event in events:
        message = str(event.get("message", ""))
        report = parse_report(message)
        if report is not None:
            reports.append((float(event["timestamp"]), report))
            continue
        line = _structured(message)
        if line is not None and line.get("awsRequestId"):
            lines[str(line["awsRequestId"])] = line
    rows: list[dict[str, Any]] = []
    for timestamp, report in reports:
        line = lines.get(report["request_id"], {})
        run_ids = line.get("runIds") or []
        if run_ids and run_id not in run_ids:
            continue  # another run's invocation on the same stack
        started = line.get("startedAtMs")
        trial = trial_of(spans, variant, float(started) if started else timestamp)
        if trial is None:
            continue

        base = {
            "run_id": run_id,
            "trial": trial,
            "variant": variant,
            "source": LOGS_SOURCE,
            "timestamp_ms": timestamp,
            "dimensions": json.dumps(
                {"function": function, "request_id": report["request_id"]}, sort_keys=True
            ),
        }
        rows += [
            {**base, "metric": metric, "value": float(value), "unit": unit}
            for metric, value, unit in _figures(variant, report, line)
        ]
    return rows


def read_log_events(
    logs: Any, group: str, start_ms: float, end_ms: float, pattern: str
) -> list[dict[str, Any]]:
    """Every event of ``group`` in the window matching ``pattern`` (FilterLogEvents, all pages)."""
    arguments: dict[str, Any] = {
        "logGroupName": group,
        "startTime": int(start_ms),
        "endTime": int(end_ms) + 1,
        "filterPattern": pattern,
    }
    events: list[dict[str, Any]] = []
    while True:
        page = logs.filter_log_events(**arguments)
        events += page.get("events", [])
        token = page.get("nextToken")
        if not token:  # an empty page with a token only means "not searched through yet"
            return events
        arguments["nextToken"] = token
