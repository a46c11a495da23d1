from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from analysis import plots
from analysis.analyze import RunAnalysis
from analysis.render import InView, render, to_png
from tests.analysis.views import views


def _cdf(client: pd.DataFrame, column: str = "latency_ms") -> plots.PlotData:
    with views(client=client) as connection:
        return plots.latency_cdf_plot(plots.cdf_points(connection, column), column)


def _client(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"variant": variant, "latency_ms": value, "warmup": False, "outcome": "succeeded"}
        for variant, latencies in values.items()
        for value in latencies
    ]
    return pd.DataFrame(rows)


def test_cdf_is_monotone_and_hits_known_quantiles() -> None:
    client = _client({"direct": [float(v) for v in range(1, 101)], "storage_first": [5.0] * 10})
    data = _cdf(client)
    direct = next(s for s in data.series if s.label == "direct")
    assert np.all(np.diff(direct.x) >= 0) and np.all(np.diff(direct.y) > 0)
    assert direct.y[0] == 0 and direct.y[-1] == 1
    assert direct.x[-1] == 100 and direct.x[0] == 1
    assert np.interp(0.5, direct.y, direct.x) == pytest.approx(50.5)
    assert data.xlog


def test_outage_offsets_relative_to_trial_start() -> None:
    trials = pd.DataFrame(
        {
            "started_at_ms": [1000.0, 90_000.0, 5000.0],
            "outage_start_ms": [21_000.0, 110_000.0, np.nan],
            "outage_end_ms": [36_000.0, 125_000.0, np.nan],
        }
    )
    assert plots.outage_offsets(trials) == ((20.0, 35.0, "outage"),)


def test_rate_vs_p99_marks_the_knee_and_the_slo() -> None:
    stages = pd.DataFrame(
        {"variant": "direct", "offered_per_s": [10.0, 20.0, 40.0], "p99_ms": [50.0, 60.0, 900.0]}
    )
    knees = pd.DataFrame({"variant": ["direct"], "knee_rate_per_s": [20.0]})
    data = plots.rate_vs_p99_plot(stages, knees, 500.0)
    assert data.markers == ((20.0, 60.0, "direct knee"),)
    assert data.hlines[0][0] == 500.0


def test_cost_plot_stacks_components_per_variant() -> None:
    costs = pd.DataFrame(
        {
            "variant": ["direct", "direct", "direct", "storage_first", "storage_first"],
            "component": ["api", "lambda", "total", "api", "total"],
            "cost": [3.5, 1.0, 4.5, 3.5, 3.5],
        }
    )
    data = plots.cost_plot(costs)
    assert data.categories == ("direct", "storage_first")
    by_label = {s.label: s.y.tolist() for s in data.series}
    assert by_label == {"api": [3.5, 3.5], "lambda": [1.0, 0.0]}


def test_backlog_plot_one_series_per_trial(analyses: dict[str, RunAnalysis]) -> None:
    data = plots.backlog_plot(analyses["outage"].backlog, ((20.0, 30.0, "outage"),))
    assert [s.label for s in data.series] == ["trial 2", "trial 4"]
    assert max(s.y.max() for s in data.series) == analyses["outage"].backlog["backlog"].max()


def test_every_renderer_draws_under_agg(analyses: dict[str, RunAnalysis]) -> None:
    analysis = analyses["outage"]
    shaded = plots.outage_offsets(analysis.run.trials)
    all_plots = [
        plots.latency_cdf_plot(analysis.cdf["latency_ms"]),
        plots.latency_time_plot(analysis.latency_over_time, shaded),
        plots.rate_time_plot(analysis.throughput, shaded),
        plots.lag_time_plot(analysis.lag_over_time, shaded),
        plots.backlog_plot(analysis.backlog, shaded),
        plots.rate_vs_p99_plot(analysis.stages, analysis.knees, 500.0),
        plots.cost_plot(analysis.costs),
        plots.latency_cdf_plot(analysis.cdf["latency_ms"].iloc[0:0]),  # empty: "no data"
    ]
    for data in all_plots:
        figure = Figure()
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        render(ax, data)
        assert ax.get_title() == data.title
        png = to_png(data)
        assert png.startswith(b"\x89PNG")
    lag_axes = Figure().add_subplot()
    render(lag_axes, all_plots[3])
    assert lag_axes.get_yscale() == "log"
    assert len(lag_axes.patches) == 1  # the shaded outage window


def test_time_to_result_cdf_uses_only_polled_rows() -> None:
    client = pd.DataFrame(
        {
            "variant": "storage_first",
            "warmup": False,
            "outcome": "accepted",
            "time_to_result_ms": [100.0, None, 300.0],
        }
    )
    data = _cdf(client, "time_to_result_ms")
    assert data.title.startswith("Time to result")
    assert data.series[0].x.min() == 100.0 and data.series[0].x.max() == 300.0


def test_log_axis_labels_are_plain_and_sparse_and_the_legend_is_outside_the_axes() -> None:
    """A short log range (2-12 ms): no "4x10^0" minor labels, none between 2x and 5x; the
    legend sits right of the axes, so it never covers data."""
    client = _client({"direct": list(np.linspace(3, 12, 200)), "storage_first": [2.0, 2.5, 8.0]})
    data = _cdf(client)
    figure = Figure(figsize=(8.4, 3.6))
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    render(ax, data)
    canvas.draw()
    minor = [tick.get_text() for tick in ax.xaxis.get_minorticklabels() if tick.get_text()]
    assert minor and all("times" not in text and "^" not in text for text in minor)
    assert {text[0] for text in minor} <= {"2", "5"}
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1


def test_to_png_has_exactly_the_pixels_savefig_draws(analyses: dict[str, RunAnalysis]) -> None:
    """to_png writes RGB at a faster compression than savefig's RGBA: same image, pixel for
    pixel (the figure is opaque), at the figure's size and resolution."""
    analysis = analyses["outage"]
    data = plots.latency_time_plot(analysis.latency_over_time, ((20.0, 30.0, "outage"),))
    figure = Figure(figsize=(8.4, 3.6), dpi=100)
    figure.subplots_adjust(left=0.1, right=0.74, bottom=0.15, top=0.9)
    FigureCanvasAgg(figure)
    render(figure.add_subplot(), data)
    reference = io.BytesIO()
    figure.savefig(reference, format="png")
    with Image.open(io.BytesIO(to_png(data))) as fast, Image.open(reference) as saved:
        assert fast.mode == "RGB" and fast.size == saved.size == (840, 360)
        assert fast.info["dpi"] == pytest.approx(saved.info["dpi"])
        assert fast.info["dpi"] == pytest.approx((100, 100), abs=0.01)
        assert np.array_equal(np.asarray(fast.convert("RGBA")), np.asarray(saved))


def test_log_axes_build_only_the_ticks_they_draw_and_draw_the_same_image() -> None:
    """InView drops the locations a log locator returns outside the view: fewer ticks are
    built, and the image is pixel for pixel the one the axis' own locators draw."""
    client = _client({"direct": list(np.linspace(3, 40, 200)), "storage_first": [2.5, 8.0, 30.0]})
    data = _cdf(client)
    canvases, axes = [], []
    for unwrap in (False, True):
        figure = Figure(figsize=(8.4, 3.6))
        canvases.append(FigureCanvasAgg(figure))
        ax = figure.add_subplot()
        render(ax, data)
        if unwrap:
            for locator, setter in (
                (ax.xaxis.get_major_locator(), ax.xaxis.set_major_locator),
                (ax.xaxis.get_minor_locator(), ax.xaxis.set_minor_locator),
            ):
                assert isinstance(locator, InView)
                setter(locator.locator)
        canvases[-1].draw()
        axes.append(ax)
    trimmed, default = axes
    low, high = trimmed.get_xlim()
    assert all(low <= x <= high for x in trimmed.xaxis.get_minorticklocs())
    assert len(trimmed.xaxis.minorTicks) < len(default.xaxis.minorTicks)
    assert np.array_equal(np.asarray(canvases[0].buffer_rgba()), canvases[1].buffer_rgba())
