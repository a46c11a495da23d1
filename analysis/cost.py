"""Cost per million requests from measured usage times a price table (data, not code).

One row per billed unit, with its measured quantity: API Gateway requests (one per client
request attempt), Lambda requests and billed duration in GB-seconds (each invocation's Duration
and InitDuration rounded up to 1 ms, times memory in GB), DynamoDB write units (ceil(item KB)
per write), DynamoDB read units (ceil(item / 4 KB) per strongly consistent read: the stream
processor's BatchGetItem/GetItem of each record's item, and status GETs), SQS requests (one
SendMessage per batch parked on the failure destination) and CloudWatch Logs ingestion (bytes
the handlers and the Lambda platform log per invocation). Stream reads by a Lambda trigger are
free. Where no measured figure exists, the quantity is estimated from counts and the row's
``basis`` says so.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pandas as pd

from analysis.metrics import lambda_usage, metric_total

__all__ = ["ITEM_OVERHEAD_BYTES", "assumptions", "cost_per_million", "usage"]

# Attributes other than the request body (ids, status, timestamps, error, ttl), bytes.
ITEM_OVERHEAD_BYTES = 200

# What one unit of each cost component (in cost_per_million's order) is.
UNITS = ("request", "invocation", "GB-second", "write unit", "read unit", "request", "GB")

# CloudWatch Logs bytes per invocation, estimated from what the code logs: the platform's
# START, END and REPORT lines (REPORT with Init Duration on a cold start) and one JSON line per
# request handled (processor/direct.py and processor/stream.py log one per record, ~120-170
# bytes with a 36-character request id).
PLATFORM_LOG_BYTES = 330
HANDLER_LOG_BYTES = {"direct": 130, "storage_first": 160}

USAGE_COLUMNS = [
    "variant", "requests", "api_requests", "lambda_invocations", "lambda_billed_ms",
    "lambda_gb_seconds", "write_units", "read_units", "sqs_requests", "log_gb", "source",
    "read_basis", "sqs_basis", "log_basis",
]  # fmt: skip


def usage(connection: duckdb.DuckDBPyConnection, stack_config: dict[str, Any]) -> pd.DataFrame:
    """Measured usage per variant over the whole run (warm-up included: it was paid for), from
    the engine's client, server, parked and metrics views. Item counts and integer-valued sums
    are exact in any order; the float ones come from ``analysis.metrics`` in read order."""
    memory_gb = float(stack_config.get("memory_mb", 256)) / 1024
    per_variant = connection.execute(
        """
        WITH sent AS (
            SELECT variant, count(*) AS requests,
                   count(*) FILTER (WHERE NOT isnan(time_to_result_ms)) AS polled
            FROM client WHERE variant IS NOT NULL GROUP BY variant
        ), items AS (
            SELECT variant, count(*) AS items,
                   sum(ceil((coalesce(request_bytes, 0)::DOUBLE + 200) / 1024)) AS write_units,
                   sum(ceil((coalesce(request_bytes, 0)::DOUBLE + 200) / 4096)) AS read_units,
                   sum(greatest(coalesce(attempts, 1), 1)) AS attempts,
                   coalesce(sum(ceil(processed_at_ms - started_at_ms))
                            FILTER (WHERE NOT isnan(processed_at_ms - started_at_ms)), 0)
                   AS work_ms
            FROM server GROUP BY variant
        ), parked_batches AS (
            SELECT variant, count(*) AS batches FROM parked GROUP BY variant
        )
        SELECT sent.*, coalesce(items.items, 0) AS items, items.write_units, items.read_units,
               coalesce(items.attempts, 0) AS attempts, coalesce(items.work_ms, 0) AS work_ms,
               coalesce(parked_batches.batches, 0) AS batches
        FROM sent LEFT JOIN items USING (variant) LEFT JOIN parked_batches USING (variant)
        ORDER BY variant
        """
    ).df()
    rows = []
    for sent in per_variant.itertuples(index=False):
        variant = str(sent.variant)
        n_items = int(sent.items)
        # ceil(item KB) per write, ceil(item / 4 KB) per read, averaged over the items.
        units_per_write = float(sent.write_units) / n_items if n_items else 1.0
        units_per_read = float(sent.read_units) / n_items if n_items else 1.0
        attempts = float(sent.attempts)
        measured = lambda_usage(connection, variant)
        if measured is not None:
            lambda_invocations, billed_ms = measured.invocations, measured.billed_ms
        else:
            lambda_invocations = attempts
            billed_ms = float(sent.work_ms)
        consumed = metric_total(connection, variant, "ConsumedWriteCapacityUnits")
        if consumed is not None:
            write_units = consumed  # CloudWatch counts every write, the API's PutItem included
        else:
            # storage_first: API Gateway's PutItem per stored item, then the processor's writes.
            api_puts = float(n_items) if variant == "storage_first" else 0.0
            processor_writes = metric_total(connection, variant, "PutItem", "UpdateItem")
            writes = api_puts + (processor_writes if processor_writes is not None else attempts)
            write_units = writes * units_per_write
        measured_reads = metric_total(connection, variant, "GetItem", "BatchGetItem", "Query")
        polled = int(sent.polled)
        if measured_reads is not None:
            reads, read_basis = measured_reads, "measured"
        else:
            # The stream processor reads each record's item (strongly consistent) before
            # processing it; a polling client's status GET is at least one more read.
            processor_reads = attempts if variant == "storage_first" else 0.0
            reads = processor_reads + polled
            read_basis = "estimate: 1 consistent read per processing attempt + 1 per polled request"
        parked_batches = float(sent.batches)
        handled = attempts if variant == "storage_first" else float(sent.requests)
        log_bytes = lambda_invocations * PLATFORM_LOG_BYTES + handled * HANDLER_LOG_BYTES.get(
            str(variant), 150
        )
        rows.append(
            {
                "variant": variant,
                "requests": int(sent.requests),
                "api_requests": int(sent.requests),
                "lambda_invocations": lambda_invocations,
                "lambda_billed_ms": billed_ms,
                "lambda_gb_seconds": billed_ms / 1000 * memory_gb,
                "write_units": write_units,
                "read_units": reads * units_per_read,
                "sqs_requests": parked_batches,
                "log_gb": log_bytes / 1e9,
                "read_basis": read_basis,
                "sqs_basis": "measured: one SendMessage per parked batch",
                "log_basis": "estimate: bytes per invocation from what the handlers log",
                "source": "estimated from items"
                if measured is None
                else ("metrics" if measured.exact else "metric averages"),
            }
        )
    return pd.DataFrame(rows, columns=USAGE_COLUMNS)


def cost_per_million(
    usage_table: pd.DataFrame, prices: dict[str, Any], architecture: str = "arm64"
) -> pd.DataFrame:
    """Per variant and component: usage per million requests, unit price and cost (currency of
    the price table) per million requests; component "total" sums them."""
    table = prices["prices"]
    gb_second_key = f"lambda_per_gb_second_{architecture}"
    components = [
        (
            "API Gateway requests",
            "api_requests",
            table["api_gateway_rest_per_million_requests"] / 1e6,
        ),
        ("Lambda requests", "lambda_invocations", table["lambda_per_million_requests"] / 1e6),
        ("Lambda GB-seconds", "lambda_gb_seconds", table[gb_second_key]),
        (
            "DynamoDB write units",
            "write_units",
            table["dynamodb_per_million_write_request_units"] / 1e6,
        ),
        (
            "DynamoDB read units",
            "read_units",
            table["dynamodb_per_million_read_request_units"] / 1e6,
        ),
        ("SQS requests", "sqs_requests", table.get("sqs_per_million_requests", 0.0) / 1e6),
        (
            "CloudWatch Logs ingestion",
            "log_gb",
            table.get("cloudwatch_logs_ingestion_per_gb", 0.0),
        ),
    ]
    bases = {"DynamoDB read units": "read_basis", "SQS requests": "sqs_basis",
             "CloudWatch Logs ingestion": "log_basis"}  # fmt: skip
    rows = []
    for row in usage_table.itertuples(index=False):
        scale = 1e6 / row.requests if row.requests else math.nan
        total = 0.0
        for (name, column, unit_price), unit in zip(components, UNITS, strict=True):
            quantity = float(getattr(row, column)) * scale
            cost = quantity * float(unit_price)
            total += cost
            rows.append(
                {
                    "variant": row.variant,
                    "component": name,
                    "per_million_requests": quantity,
                    "unit": unit,
                    "unit_price": float(unit_price),
                    "cost": cost,
                    "basis": str(getattr(row, bases[name]))
                    if name in bases
                    else ("measured" if row.source != "estimated from items" else "estimate"),
                }
            )
        rows.append(
            {
                "variant": row.variant,
                "component": "total",
                "per_million_requests": math.nan,
                "unit": "",
                "unit_price": math.nan,
                "cost": total,
                "basis": "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "variant",
            "component",
            "per_million_requests",
            "unit",
            "unit_price",
            "cost",
            "basis",
        ],
    )


def assumptions(prices: dict[str, Any], usage_table: pd.DataFrame, target: str) -> list[str]:
    """The statements a reader needs to trust (or redo) the cost numbers."""
    lines = [
        f"Prices: {prices['region']}, {prices['currency']}, as of {prices['date']} "
        f"(sources: {', '.join(prices['sources'])}).",
        "One API Gateway REST request per client request attempt (retries are billed).",
        "DynamoDB reads: the stream processor's strongly consistent read of each record's "
        "item (1 read unit per 4 KB), plus one status GET per polled request; an estimate "
        "from these counts where no read metric was recorded.",
        f"CloudWatch Logs ingestion: an estimate, {PLATFORM_LOG_BYTES} bytes of platform lines "
        "per invocation plus one handler line per request handled (direct "
        f"{HANDLER_LOG_BYTES['direct']} bytes, storage_first {HANDLER_LOG_BYTES['storage_first']}"
        " bytes), measured from what the handlers log.",
        "SQS: one SendMessage per batch the event source mapping parked on the failure "
        "destination; reading it back (a re-drive) is not counted.",
        "Lambda billed duration = each invocation's Duration + InitDuration rounded up to 1 ms.",
        f"Item size = request body + {ITEM_OVERHEAD_BYTES} bytes of attributes; "
        "1 write unit per 1 KB written, 1 read unit per 4 KB read (on-demand).",
        "DynamoDB Streams reads by the Lambda trigger are free; the event source mapping's "
        "polling is not billed separately.",
        *[str(note) for note in prices.get("notes", [])],
    ]
    averaged = usage_table.loc[usage_table["source"] == "metric averages", "variant"].tolist()
    if averaged:
        lines.append(
            f"{', '.join(averaged)}: billed duration from CloudWatch per-period averages "
            "(+0.5 ms per invocation for the rounding up), not per invocation."
        )
    estimated = usage_table.loc[usage_table["source"] == "estimated from items", "variant"].tolist()
    if estimated:
        lines.append(
            f"No Lambda metrics for {', '.join(estimated)}: invocations = processing attempts "
            "and duration = items' started->processed time (an estimate)."
        )
    if target == "local":
        lines.append(
            "Local-stage run: these are what the measured usage would cost on AWS, not a bill."
        )
    return lines
