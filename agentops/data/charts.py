"""An answer's chart, drawn from its ChartSpec: a small PNG (matplotlib's Agg canvas; no pyplot, so no global state
between threads) for emails and reports, and an interactive Altair chart for the app. One spec, so the two show
the same data, title and axis titles."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from agentops.data.result import ChartSpec, Format, format_value

if TYPE_CHECKING:
    import altair as alt
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SIZE_INCHES = (5.5, 3.0)
DPI = 80
BAR = "#4C78A8"
HIGHLIGHT = "#E45756"
AXIS_FORMAT = ",~f"
"""d3-format for the value axis: 600,000 or 0.5 (tooltips carry the value as format_value writes it)."""


def render_png(spec: ChartSpec) -> bytes:
    return _png(png_figure(spec))


def png_figure(spec: ChartSpec) -> Figure:
    """The matplotlib figure render_png saves."""
    return _line_figure(spec) if spec.kind == "line" else _bar_figure(spec)


def altair_chart(spec: ChartSpec) -> alt.TopLevelMixin:
    """The interactive chart: tooltips with the formatted value, axis titles from the spec, bars in its order."""
    import altair as alt

    data = alt.Data(values=spec.points())
    tooltip = [alt.Tooltip("label:N", title=spec.x_title), alt.Tooltip("shown:N", title=spec.y_title)]
    y = alt.Y("value:Q", title=spec.y_title, axis=alt.Axis(format=AXIS_FORMAT))
    base = alt.Chart(data)
    if spec.kind == "line":
        x = alt.X("label:O", title=spec.x_title, sort=None, axis=alt.Axis(labelAngle=-45))
        return base.mark_line(point=True, color=BAR).encode(x=x, y=y, tooltip=tooltip).properties(
            title=spec.title, height=320)
    x = alt.X("label:N", title=spec.x_title, sort=None, axis=alt.Axis(labelAngle=-30))
    if spec.reference is None:
        return base.mark_bar(color=BAR).encode(x=x, y=y, tooltip=tooltip).properties(title=spec.title, height=320)
    below, above = f"below {spec.reference_label}", f"at or above {spec.reference_label}"
    color = alt.Color("status:N", title=None, scale=alt.Scale(domain=[above, below], range=[BAR, HIGHLIGHT]),
                      legend=alt.Legend(orient="top"))
    bars = base.mark_bar().encode(x=x, y=y, color=color, tooltip=[*tooltip, alt.Tooltip("status:N", title="")])
    reference = alt.Chart(alt.Data(values=[{"reference": spec.reference,
                                            "shown": _shown(spec.reference, spec.y_format)}])).mark_rule(
        color="#333333", strokeDash=[4, 4]).encode(
        y="reference:Q", tooltip=[alt.Tooltip("shown:N", title=f"{spec.reference_label} ({spec.y_title.lower()})")])
    return alt.layer(bars, reference).properties(title=spec.title, height=320)


def _shown(value: float, fmt: Format) -> str:
    return format_value(value, "number" if fmt == "integer" else fmt)


def _compact(value: float, _position: object = None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def _figure(rotated_labels: bool) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.34 if rotated_labels else 0.2)
    ax = fig.subplots()
    ax.yaxis.set_major_formatter(FuncFormatter(_compact))
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _titles(ax: Axes, spec: ChartSpec) -> None:
    ax.set_title(spec.title, fontsize=10)
    ax.set_xlabel(spec.x_title, fontsize=9)
    ax.set_ylabel(spec.y_title, fontsize=9)
    ax.tick_params(labelsize=8)


def _bar_figure(spec: ChartSpec) -> Figure:
    """Bars in the spec's order; a dashed reference line (e.g. the average), bars under it highlighted."""
    rotated = len(spec.labels) > 5 or any(len(label) > 10 for label in spec.labels)
    fig, ax = _figure(rotated_labels=rotated)
    ax.bar(spec.labels, spec.values, color=[HIGHLIGHT if b else BAR for b in spec.below])
    if spec.reference is not None:
        ax.axhline(spec.reference, color="#333333", linestyle="--", linewidth=1,
                   label=f"{spec.reference_label} {_shown(spec.reference, spec.y_format)}")
        ax.set_ylim(0, max([*spec.values, spec.reference]) * 1.2)
        ax.legend(fontsize=8, loc="upper right", ncols=1, frameon=False)
    _titles(ax, spec)
    if rotated:
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def _line_figure(spec: ChartSpec) -> Figure:
    fig, ax = _figure(rotated_labels=len(spec.labels) > 6)
    ax.plot(spec.labels, spec.values, marker="o", color=BAR, linewidth=1.5, markersize=3)
    _titles(ax, spec)
    if len(spec.labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(bottom=0)
    return fig
