"""QueryResult: one answered (or unanswerable) question, with the SQL or code behind it, a table and a chart.

A ChartSpec is the one description of an answer's chart: the PNG for emails and reports and the app's interactive
chart are both drawn from it (agentops.data.charts), so they show the same data, title and labels. Each column
has a Format, and every number a person reads (the answer's sentence, the table, tooltips) goes through
format_value.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Method = Literal["duckdb-shape", "pandasai", "unanswerable"]
DeclaredFormat = Literal["money", "integer", "number", "percent", "date", "text"]
"""What `formats:` in data/<dataset>.yaml may say of a column."""
Format = Literal["money", "integer", "number", "percent", "date", "month", "text"]
"""money: 2 decimals; integer: none; number: 2 decimals; percent: a signed figure already in percent; all with
thousands separators. date: ISO day; month: YYYY-MM."""
_ISO_DAY_OR_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?\Z")


def format_value(value: Any, fmt: Format) -> str:
    """One value as a person reads it: `12,345.68`, `1,234`, `-12.3%`, `2026-03`."""
    if value is None:
        return "-"
    if isinstance(value, bool) or fmt in ("text", "date", "month"):
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if fmt in ("date", "month") and _ISO_DAY_OR_TIME.match(text):
            return text[:7] if fmt == "month" else text[:10] if is_midnight(text) else text.replace("T", " ")
        return text
    if not isinstance(value, int | float | decimal.Decimal):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        return "-"
    if fmt == "integer":
        return f"{round(number):,}"
    if fmt == "percent":
        return f"{number:+,.1f}%"
    return f"{number:,.2f}"


def is_midnight(iso: str) -> bool:
    """An ISO day, or a time on it that is 00:00 (as dates come back from pandas: 2026-01-01T00:00:00.000)."""
    return not iso[10:].strip("T 0:.Z+-")


def infer_format(values: list[Any]) -> Format:
    """A column's format from its values when nothing is declared: integers, other numbers, ISO dates, text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "number"
    if present and all(isinstance(v, str) and _ISO_DAY_OR_TIME.match(v) and is_midnight(v) for v in present):
        return "date"
    return "text"


def table_formats(columns: list[str], rows: list[dict[str, Any]],
                  declared: dict[str, DeclaredFormat] | None = None) -> dict[str, Format]:
    """Each column's format: as declared for a column of that name, else inferred from the rows."""
    declared = declared or {}
    return {name: declared.get(name) or infer_format([row.get(name) for row in rows]) for name in columns}


class ChartSpec(BaseModel):
    """An answer's chart, drawn as a PNG and as the app's Altair chart from these same fields."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["bar", "line"]
    title: str
    x_title: str
    """The axis of labels: 'product', 'month'."""
    y_title: str
    """The measure and its aggregation: 'average unit price'."""
    y_format: Format
    labels: list[str]
    """One per point, in order; for a line chart, months as YYYY-MM."""
    values: list[float]
    reference: float | None = None
    """A dashed line across the bars (the average, for below-average answers); bars under it are highlighted."""
    reference_label: str = "average"

    @model_validator(mode="after")
    def _one_value_per_label(self) -> ChartSpec:
        if len(self.labels) != len(self.values):
            raise ValueError(f"{len(self.labels)} labels for {len(self.values)} values")
        return self

    @property
    def below(self) -> list[bool]:
        return [self.reference is not None and v < self.reference for v in self.values]

    def points(self) -> list[dict[str, Any]]:
        """The chart's data as rows, with each value already formatted for a tooltip."""
        rows: list[dict[str, Any]] = []
        for label, value, below in zip(self.labels, self.values, self.below, strict=True):
            row: dict[str, Any] = {"label": label, "value": value, "shown": format_value(value, self.y_format)}
            if self.reference is not None:
                row["status"] = f"below {self.reference_label}" if below else f"at or above {self.reference_label}"
            rows.append(row)
        return rows


class QueryResult(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", protected_namespaces=())

    question: str
    dataset: str
    method: Method
    answer: str
    """A short sentence or two a person can act on."""
    sql: str | None = None
    """The SQL that produced the table (for model-written code: every query it ran, in order)."""
    code: str | None = None
    """The model-written Python that ran in the sandbox."""
    table: list[dict[str, Any]] = Field(default_factory=list)
    """JSON-safe rows: dates as ISO strings, decimals as floats, NaN as None."""
    columns: list[str] = Field(default_factory=list)
    formats: dict[str, Format] = Field(default_factory=dict)
    """How each column of the table reads (money, integer, number, percent, date, month, text)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """A column's heading where its name says less than it holds: 'Average unit price' for `unit_price`."""
    chart: ChartSpec | None = None
    """What the chart shows; chart_png is drawn from it (or, for model-written code, made by that code)."""
    chart_png: bytes | None = None
    model: str | None = None
    """The model that wrote the code, for method "pandasai"."""
    error: str | None = None
    """Why model-written code produced no answer (generation or sandbox failure)."""
    refusals: list[str] = Field(default_factory=list)
    """Operations the sandbox refused that the model-written code caught and survived."""
    elapsed_ms: float = 0.0

    @property
    def chart_sha256(self) -> str | None:
        return hashlib.sha256(self.chart_png).hexdigest() if self.chart_png else None

    def to_record(self, *, max_rows: int | None = None, chart_data: bool = False) -> dict[str, Any]:
        """A JSON-safe dict for a durable step. The chart is its sha256 and size, plus base64 when asked for."""
        rows = self.table if max_rows is None else self.table[:max_rows]
        record: dict[str, Any] = {
            "question": self.question, "dataset": self.dataset, "method": self.method, "answer": self.answer,
            "sql": self.sql, "code": self.code, "columns": list(self.columns), "formats": dict(self.formats),
            "table": rows,
            "rows": len(self.table), "truncated": len(rows) < len(self.table), "model": self.model,
            "error": self.error, "refusals": list(self.refusals), "elapsed_ms": round(self.elapsed_ms, 1),
            "chart": None}
        if self.chart_png:
            chart: dict[str, Any] = {"sha256": self.chart_sha256, "bytes": len(self.chart_png), "mime": "image/png"}
            if chart_data:
                chart["base64"] = base64.b64encode(self.chart_png).decode("ascii")
            record["chart"] = chart
        return record


def json_safe(value: Any) -> Any:
    """One cell as JSON: ISO dates, floats for decimals and numpy scalars, None for NaN and infinities."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):
        return json_safe(value.item())
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def rows_as_records(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{name: json_safe(cell) for name, cell in zip(columns, row, strict=True)} for row in rows]
