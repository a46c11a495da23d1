"""Tables for the report: DataFrames shaped for reading, rendered as HTML or Markdown."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from analysis.stats import QUANTILES

__all__ = ["format_interval", "format_value", "interval_table", "to_html", "to_markdown"]

UNBOUNDED = "—"  # a side of an interval the sample cannot bound


def format_value(value: object) -> str:
    """Numbers with sensible precision; NaN/None as an en dash; everything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.4g}"
    return str(value)


def format_interval(value: float, lo: float, hi: float) -> str:
    """ "value [lo, hi]"; a side the sample cannot bound (NaN beside a value) as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return format_value(value)

    def side(bound: float) -> str:
        return UNBOUNDED if bound is None or math.isnan(float(bound)) else format_value(bound)

    return f"{format_value(value)} [{side(lo)}, {side(hi)}]"


def interval_table(summary: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """A describe_groups table as "value [lo, hi]" text per statistic, keyed by ``keys``."""
    rows = []
    for row in summary.to_dict("records"):
        shaped = {key: row[key] for key in keys}
        shaped["n"] = int(row["n"])
        if "trials" in row:
            shaped["trials"] = int(row["trials"])
        for name in ("mean", *QUANTILES, "max"):
            value, lo, hi = row[name], row[f"{name}_lo"], row[f"{name}_hi"]
            shaped[name] = format_value(value) if name == "max" else format_interval(value, lo, hi)
        rows.append(shaped)
    return pd.DataFrame(rows)


def to_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='empty'>no rows</p>"
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(value))}</td>" for value in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_no rows_\n"
    header = "| " + " | ".join(str(column) for column in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [
        "| " + " | ".join(format_value(value).replace("|", "\\|") for value in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *lines]) + "\n"
