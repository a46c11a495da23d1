"""Cost per million requests from measured usage times a price table (data, not code).

Usage per variant: API Gateway requests (one per client request), Lambda invocations and billed
duration (each invocation's Duration and InitDuration rounded up to 1 ms, times memory in GB),
DynamoDB write units (ceil(item KB) per write) and read units (ceil(item / 4 KB) per read).
Stream reads by a Lambda trigger are free. Where the stage recorded no metrics, usage is
estimated from the stored items and the estimate is named in the assumptions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.metrics import lambda_usage, metric_total

__all__ = ["ITEM_OVERHEAD_BYTES", "assumptions", "cost_per_million", "usage"]

# Attributes other than the request body (ids, status, timestamps, error, ttl), bytes.
ITEM_OVERHEAD_BYTES = 200

# What one unit of each cost component (in cost_per_million's order) is.
UNITS = ("request", "invocation", "GB-second", "write unit", "read unit")

USAGE_COLUMNS = [
    "variant", "requests", "api_requests", "lambda_invocations", "lambda_billed_ms",
    "lambda_gb_seconds", "write_units", "read_units", "source",
]  # fmt: skip


def usage(
    client: pd.DataFrame, server: pd.DataFrame, metrics: pd.DataFrame, stack_config: dict[str, Any]
) -> pd.DataFrame:
    """Measured usage per variant over the whole run (warm-up included: it was paid for)."""
    memory_gb = float(stack_config.get("memory_mb", 256)) / 1024
    rows = []
    for variant, sent in client[["variant"]].groupby("variant", observed=True):
        items = server.loc[server["variant"] == variant]
        item_bytes = (
            items["request_bytes"].fillna(0).to_numpy(dtype=np.float64) + ITEM_OVERHEAD_BYTES
        )
        units_per_write = float(np.ceil(item_bytes / 1024).mean()) if len(items) else 1.0
        units_per_read = float(np.ceil(item_bytes / 4096).mean()) if len(items) else 1.0
        attempts = float(items["attempts"].fillna(1).clip(lower=1).sum())
        measured = lambda_usage(metrics, variant)
        if measured is not None:
            lambda_invocations, billed_ms = measured.invocations, measured.billed_ms
        else:
            lambda_invocations = attempts
            work = (items["processed_at_ms"] - items["started_at_ms"]).dropna()
            billed_ms = float(np.ceil(work).sum())
        consumed = metric_total(metrics, variant, "ConsumedWriteCapacityUnits")
        if consumed is not None:
            write_units = consumed  # CloudWatch counts every write, the API's PutItem included
        else:
            # storage_first: API Gateway's PutItem per stored item, then the processor's writes.
            api_puts = float(len(items)) if variant == "storage_first" else 0.0
            processor_writes = metric_total(metrics, variant, "PutItem", "UpdateItem")
            writes = api_puts + (processor_writes if processor_writes is not None else attempts)
            write_units = writes * units_per_write
        reads = metric_total(metrics, variant, "GetItem", "Query") or 0.0
        rows.append(
            {
                "variant": variant,
                "requests": len(sent),
                "api_requests": len(sent),
                "lambda_invocations": lambda_invocations,
                "lambda_billed_ms": billed_ms,
                "lambda_gb_seconds": billed_ms / 1000 * memory_gb,
                "write_units": write_units,
                "read_units": reads * units_per_read,
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
    ]
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
            }
        )
    return pd.DataFrame(
        rows, columns=["variant", "component", "per_million_requests", "unit", "unit_price", "cost"]
    )


def assumptions(prices: dict[str, Any], usage_table: pd.DataFrame, target: str) -> list[str]:
    """The statements a reader needs to trust (or redo) the cost numbers."""
    lines = [
        f"Prices: {prices['region']}, {prices['currency']}, as of {prices['date']} "
        f"(sources: {', '.join(prices['sources'])}).",
        "One API Gateway REST request per client request; polling GETs are not counted.",
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
