"""Small PNG charts for answers (matplotlib's Agg canvas; no pyplot, so no global state between threads)."""

from __future__ import annotations

import io
from collections.abc import Sequence

SIZE_INCHES = (5.5, 3.0)
DPI = 80
BAR = "#4C78A8"
HIGHLIGHT = "#E45756"


def _figure():  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE_INCHES, dpi=DPI)
    return fig, fig.subplots()


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str,
              reference: float | None = None, reference_label: str = "average") -> bytes:
    """Bars in the given order; a dashed reference line (e.g. the average) when given."""
    fig, ax = _figure()
    below = [reference is not None and v < reference for v in values]
    ax.bar(list(labels), list(values), color=[HIGHLIGHT if b else BAR for b in below])
    if reference is not None:
        ax.axhline(reference, color="#333333", linestyle="--", linewidth=1, label=f"{reference_label} {reference:,.0f}")
        ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if len(labels) > 5:
        ax.tick_params(axis="x", labelrotation=30)
    return _png(fig)


def line_chart(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str) -> bytes:
    fig, ax = _figure()
    ax.plot(list(labels), list(values), marker="o", color=BAR, linewidth=1.5, markersize=3)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if len(labels) > 6:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(bottom=0)
    return _png(fig)
