"""Plot data: what each figure shows, as plain arrays (tested); render.py draws it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import duckdb
import numpy as np
import pandas as pd

from analysis import engine
from analysis.latency import answered

__all__ = [
    "PlotData",
    "Series",
    "backlog_plot",
    "cdf_points",
    "cost_plot",
    "lag_time_plot",
    "latency_cdf_plot",
    "latency_time_plot",
    "outage_offsets",
    "rate_time_plot",
    "rate_vs_p99_plot",
]


@dataclass(frozen=True)
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class PlotData:
    """One figure's content. ``kind`` is "line" or "stacked_bar" (x = category positions)."""

    key: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    kind: str = "line"
    xlog: bool = False
    ylog: bool = False
    shaded: tuple[tuple[float, float, str], ...] = ()
    markers: tuple[tuple[float, float, str], ...] = ()
    hlines: tuple[tuple[float, str], ...] = ()
    categories: tuple[str, ...] = field(default=())
    legend_loc: Literal["upper right", "lower right", "upper left", "lower left"] = "upper right"

    @property
    def empty(self) -> bool:
        return all(len(series.x) == 0 for series in self.series)


def _probabilities(n: int, points: int) -> np.ndarray:
    """A grid dense in the body and, log-spaced, in the tail up to the last order statistic."""
    body = np.linspace(0.0, 0.99, points)
    depth = max(np.log10(max(n, 100)), 2.0)
    tail = 1 - np.logspace(-2, -depth, points // 2)
    return np.unique(np.concatenate([body, tail, [1.0]]))


def cdf_points(
    connection: duckdb.DuckDBPyConnection, column: str = "latency_ms", points: int = 400
) -> pd.DataFrame:
    """The empirical CDF of ``column`` of successful headline answers per variant, as
    (variant, probability, value): numpy's quantiles on a grid of probabilities (dense in the
    body, log-spaced in the tail up to the last order statistic), from the engine's order
    statistics."""
    rows = answered(connection, ["variant", column])
    counts = connection.sql(
        f'SELECT variant, count(*) FILTER (WHERE isfinite("{column}")) AS n '
        f"FROM ({rows.sql_query()}) WHERE variant IS NOT NULL GROUP BY ALL ORDER BY variant"
    ).fetchall()
    grids = {str(variant): _probabilities(n, points) for variant, n in counts if n}
    if not grids:
        return pd.DataFrame(columns=["variant", "probability", "value"])
    wanted = sorted({float(q) for grid in grids.values() for q in grid})
    table = engine.quantiles(connection, rows, ["variant"], column, wanted).set_index("variant")
    parts = [
        pd.DataFrame(
            {
                "variant": variant,
                "probability": grid,
                "value": table.loc[variant, [float(q) for q in grid]].to_numpy(dtype=np.float64),
            }
        )
        for variant, grid in grids.items()
    ]
    return pd.concat(parts, ignore_index=True)


def latency_cdf_plot(cdf: pd.DataFrame, column: str = "latency_ms") -> PlotData:
    """Empirical CDF of headline latency of successful answers per variant (the quantiles of
    :func:`cdf_points`, log x axis)."""
    series = [
        Series(
            str(variant),
            group["value"].to_numpy(dtype=np.float64),
            group["probability"].to_numpy(dtype=np.float64),
        )
        for variant, group in cdf.groupby("variant", sort=True)
    ]
    titles = {
        "latency_ms": "Response latency CDF (from actual send)",
        "latency_from_intended_ms": "Response latency CDF (from intended send)",
        "time_to_result_ms": "Time to result seen by polling clients (CDF)",
    }
    return PlotData(
        key=f"cdf_{column}",
        title=titles.get(column, f"{column} CDF"),
        xlabel="latency (ms, log scale)",
        ylabel="fraction of requests",
        series=tuple(series),
        xlog=True,
        legend_loc="lower right",
    )


def outage_offsets(trials: pd.DataFrame) -> tuple[tuple[float, float, str], ...]:
    """Outage windows in seconds since trial start (distinct, rounded to 0.1 s)."""
    if trials.empty or trials["outage_start_ms"].isna().all():
        return ()
    rows = trials.loc[trials["outage_start_ms"].notna()]
    start = ((rows["outage_start_ms"] - rows["started_at_ms"]) / 1000).round(1)
    end = ((rows["outage_end_ms"] - rows["started_at_ms"]) / 1000).round(1)
    windows = sorted(set(zip(start, end, strict=True)))
    return tuple((float(a), float(b), "outage") for a, b in windows)


def _per_variant(frame: pd.DataFrame, columns: dict[str, str]) -> tuple[Series, ...]:
    series = []
    for variant, group in frame.groupby("variant", observed=True):
        for column, suffix in columns.items():
            series.append(
                Series(
                    f"{variant} {suffix}".strip(),
                    group["t_s"].to_numpy(dtype=np.float64),
                    group[column].to_numpy(dtype=np.float64),
                )
            )
    return tuple(series)


def latency_time_plot(
    latency_over_time: pd.DataFrame, shaded: tuple[tuple[float, float, str], ...] = ()
) -> PlotData:
    return PlotData(
        key="latency_time",
        title="Response latency over time (p50 and p99 per second)",
        xlabel="time since trial start (s)",
        ylabel="latency (ms, log scale)",
        series=_per_variant(latency_over_time, {"p50_ms": "p50", "p99_ms": "p99"}),
        ylog=True,
        shaded=shaded,
    )


def rate_time_plot(
    throughput: pd.DataFrame, shaded: tuple[tuple[float, float, str], ...] = ()
) -> PlotData:
    return PlotData(
        key="rate_time",
        title="Offered vs achieved rate (successful answers)",
        xlabel="time since trial start (s)",
        ylabel="requests per second (mean over trials)",
        series=_per_variant(throughput, {"offered_per_s": "offered", "achieved_per_s": "achieved"}),
        shaded=shaded,
        legend_loc="lower right",
    )


def lag_time_plot(
    lag_over_time: pd.DataFrame, shaded: tuple[tuple[float, float, str], ...] = ()
) -> PlotData:
    return PlotData(
        key="lag_time",
        title="Stream processing lag over time (accepted -> processed)",
        xlabel="acceptance time since trial start (s)",
        ylabel="lag (ms, log scale)",
        series=_per_variant(lag_over_time, {"p50_ms": "p50", "p99_ms": "p99"}),
        ylog=True,
        shaded=shaded,
    )


def backlog_plot(
    backlog: pd.DataFrame, shaded: tuple[tuple[float, float, str], ...] = ()
) -> PlotData:
    series = tuple(
        Series(
            f"trial {trial}",
            group["t_s"].to_numpy(dtype=np.float64),
            group["backlog"].to_numpy(dtype=np.float64),
        )
        for trial, group in backlog.groupby("trial")
    )
    return PlotData(
        key="backlog",
        title="Storage-first backlog (accepted, not yet terminal or parked)",
        xlabel="time since trial start (s)",
        ylabel="requests",
        series=series,
        shaded=shaded,
    )


def rate_vs_p99_plot(stages: pd.DataFrame, knees: pd.DataFrame, slo_p99_ms: float) -> PlotData:
    """p99 from intended send (what a stage is judged on) per offered rate; knee, sustained
    rate and generator-limited stages marked."""
    series, markers = [], []
    limited_rates: set[float] = set()
    measure = "p99_from_intended_ms" if "p99_from_intended_ms" in stages else "p99_ms"
    for variant, group in stages.groupby("variant"):
        series.append(
            Series(
                str(variant),
                group["offered_per_s"].to_numpy(dtype=np.float64),
                group[measure].to_numpy(dtype=np.float64),
            )
        )
        if "status" in group:
            for limited in group.loc[group["status"] == "generator-limited"].itertuples():
                rate = float(limited.offered_per_s)
                if rate in limited_rates:
                    continue  # one label per rate: both variants' points sit close together
                limited_rates.add(rate)
                markers.append((rate, float(getattr(limited, measure)), "generator-limited"))
        row = knees.loc[knees["variant"] == variant]
        labels = {"knee_rate_per_s": "knee", "sustained_rate_per_s": "keeps up to"}
        marked: set[float] = set()
        for column, label in labels.items():
            if column not in row or not len(row) or not np.isfinite(row[column].iloc[0]):
                continue
            rate = float(row[column].iloc[0])
            if rate in marked:
                continue
            marked.add(rate)
            at = group.loc[group["offered_per_s"] == rate, measure]
            markers.append((rate, float(at.iloc[0]), f"{variant} {label}"))
    return PlotData(
        key="rate_vs_p99",
        title="Offered rate vs p99 from intended send (knee = highest rate meeting the SLO)",
        xlabel="offered rate (requests/s)",
        ylabel="p99 from intended send (ms, log)",
        series=tuple(series),
        ylog=True,
        markers=tuple(markers),
        hlines=((slo_p99_ms, f"SLO p99 {slo_p99_ms:g} ms"),),
    )


def cost_plot(costs: pd.DataFrame) -> PlotData:
    """Stacked bars: cost per million requests per variant, one layer per component."""
    parts = costs.loc[costs["component"] != "total"]
    variants = tuple(sorted(parts["variant"].unique()))
    positions = np.arange(len(variants), dtype=np.float64)
    series = []
    for component, group in parts.groupby("component", sort=False):
        by_variant = group.set_index("variant")["cost"].reindex(list(variants)).fillna(0.0)
        series.append(Series(str(component), positions, by_variant.to_numpy(dtype=np.float64)))
    return PlotData(
        key="cost",
        title="Cost per million requests",
        xlabel="variant",
        ylabel="cost per million requests",
        series=tuple(series),
        kind="stacked_bar",
        categories=variants,
    )
