"""Small PNG charts for answers (matplotlib's Agg canvas; no pyplot, so no global state between threads)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SIZE_INCHES = (5.5, 3.0)
DPI = 80
BAR = "#4C78A8"
HIGHLIGHT = "#E45756"


def _compact(value: float, _position: object = None) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def _figure(rotated_labels: bool) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.3 if rotated_labels else 0.12)
    ax = fig.subplots()
    ax.yaxis.set_major_formatter(FuncFormatter(_compact))
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
              reference: float | None = None, reference_label: str = "average") -> bytes:
    """Bars in the given order; a dashed reference line (e.g. the average) when given."""
    fig, ax = _figure(rotated_labels=len(labels) > 5 or any(len(str(label)) > 10 for label in labels))
    below = [reference is not None and v < reference for v in values]
    ax.bar(list(labels), list(values), color=[HIGHLIGHT if b else BAR for b in below])
    if reference is not None:
        ax.axhline(reference, color="#333333", linestyle="--", linewidth=1,
                   label=f"{reference_label} {_compact(reference)}")
        ax.set_ylim(0, max([*values, reference]) * 1.2)
        ax.legend(fontsize=8, loc="upper right", ncols=1, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if len(labels) > 5 or any(len(str(label)) > 10 for label in labels):
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def line_chart(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str) -> bytes:
    fig, ax = _figure(rotated_labels=len(labels) > 6)
    ax.plot(list(labels), list(values), marker="o", color=BAR, linewidth=1.5, markersize=3)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(bottom=0)
    return _png(fig)
