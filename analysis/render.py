"""Matplotlib renderers: draw a PlotData on an Axes the caller gives; PNG bytes via Agg.

No pyplot: figures are built with ``Figure`` + ``FigureCanvasAgg`` so nothing touches global
state or needs a display. Importing this module imports matplotlib (30-60 MB, about 0.3 s), so
the report imports it at its first figure, after the analysis.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator
from PIL import Image

from analysis.plots import PlotData

__all__ = ["InView", "render", "to_png"]


def _sparse_minor_label(value: float, _position: int) -> str:
    """Minor log ticks: label only 2x and 5x a power of ten, so labels never overlap."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** np.floor(np.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


class InView(Locator):
    """Another locator's tick locations, less those outside the view.

    Matplotlib builds a whole tick (three lines, two labels) for every location its locator
    returns and drops the ones outside the view only when it draws; a log locator returns whole
    decades, so a log axis built up to twice the ticks it drew. Use it only where the formatter
    ignores the other locations (the FuncFormatters of log axes here): the drawn ticks and
    labels are then the same. ``locator`` is the axis' own (set on it before), so it knows its
    axis; setting this one on the axis gives it the same.
    """

    def __init__(self, locator: Locator) -> None:
        self.locator = locator

    def __call__(self) -> Sequence[float]:
        if not isinstance(self.axis, Axis):
            return self.locator()
        return self._in_view(self.locator(), *self.axis.get_view_interval())

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        return self._in_view(self.locator.tick_values(vmin, vmax), vmin, vmax)

    def nonsingular(self, v0: float, v1: float) -> tuple[float, float]:
        return self.locator.nonsingular(v0, v1)

    def view_limits(self, vmin: float, vmax: float) -> tuple[float, float]:
        return self.locator.view_limits(vmin, vmax)

    def _in_view(self, locations: Sequence[float], vmin: float, vmax: float) -> list[float]:
        if not isinstance(self.axis, Axis):
            return list(locations)
        # In the scale's coordinates (log10 on a log axis), as matplotlib decides what to draw;
        # its tolerance there is 1e-10 of the span, 1e-5 keeps a margin.
        transform = self.axis.get_transform()
        low, high = sorted(transform.transform(np.array([vmin, vmax], dtype=np.float64)))
        margin = (high - low) * 1e-5
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = transform.transform(np.asarray(locations, dtype=np.float64))
        keep = (scaled >= low - margin) & (scaled <= high + margin)
        return [float(location) for location in np.asarray(locations)[keep]]


def _log_axis(axis: Axis) -> None:
    """Log scale labels in plain numbers; only the ticks it draws."""
    axis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
    # Matplotlib's own minor labels on a short log range read "4x10^0" and overlap.
    axis.set_minor_formatter(FuncFormatter(_sparse_minor_label))
    axis.set_major_locator(InView(axis.get_major_locator()))
    axis.set_minor_locator(InView(axis.get_minor_locator()))


def _render_lines(ax: Axes, plot: PlotData) -> None:
    for series in plot.series:
        ax.plot(
            series.x,
            series.y,
            label=series.label,
            linewidth=1.2,
            marker="." if len(series.x) < 12 else None,
        )
    right_edge = max((x for x, _, _ in plot.markers), default=0.0)
    for x, y, label in plot.markers:
        ax.plot([x], [y], marker="o", markersize=9, fillstyle="none", color="black")
        # A marker at the right edge (the top stage of a staircase) gets its label on its left,
        # inside the axes, so the label is not cut off.
        at_edge = x >= right_edge
        ax.annotate(
            label,
            (x, y),
            textcoords="offset points",
            xytext=(-6, 6) if at_edge else (6, 6),
            ha="right" if at_edge else "left",
            fontsize=8,
        )
    for y, label in plot.hlines:
        ax.axhline(y, color="grey", linestyle="--", linewidth=1, label=label)


def _render_stacked(ax: Axes, plot: PlotData) -> None:
    bottom = np.zeros(len(plot.categories))
    for series in plot.series:
        ax.bar(series.x, series.y, bottom=bottom, label=series.label, width=0.6)
        bottom = bottom + series.y
    for position, total in enumerate(bottom):
        ax.annotate(f"{total:.2f}", (position, total), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(plot.categories)), list(plot.categories))


def render(ax: Axes, plot: PlotData) -> None:
    """Draw ``plot`` on ``ax`` (title, labels, legend, shaded windows, log axes)."""
    if plot.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif plot.kind == "stacked_bar":
        _render_stacked(ax, plot)
    else:
        _render_lines(ax, plot)
    for start, end, label in plot.shaded:
        ax.axvspan(start, end, color="tab:red", alpha=0.12, label=label)
    if plot.xlog and not plot.empty:
        ax.set_xscale("log")
        _log_axis(ax.xaxis)
    if plot.ylog and not plot.empty:
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
    # A fixed title position: the automatic one measures the y axis' tick labels once more on
    # every draw, only to move the title above ticks on top of the axes, which are never drawn.
    ax.set_title(plot.title, fontsize=10, y=1.0)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles, strict=True))
        # Outside the axes, right of them: a legend never hides data ("best" placement inside
        # would also scan every point of every line).
        ax.legend(
            unique.values(),
            unique.keys(),
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            frameon=False,
        )


def to_png(
    plot: PlotData, *, width_in: float = 8.4, height_in: float = 3.6, dpi: int = 100
) -> bytes:
    """The plot rendered to PNG bytes (Agg)."""
    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    # Fixed margins: tight layout would double the drawing time of every figure.
    # The right quarter holds the legend (outside the axes).
    figure.subplots_adjust(left=0.1, right=0.74, bottom=0.15, top=0.9)
    canvas = FigureCanvasAgg(figure)
    render(figure.add_subplot(), plot)
    canvas.draw()
    # The figure is opaque, so RGB keeps every pixel of the RGBA that savefig would write; RGB
    # at zlib level 3 encodes in about half savefig's time (level 6, RGBA) into a smaller file.
    rgba = Image.frombuffer(
        "RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1
    )
    buffer = io.BytesIO()
    rgba.convert("RGB").save(buffer, format="png", compress_level=3, dpi=(dpi, dpi))
    return buffer.getvalue()
