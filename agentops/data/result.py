"""QueryResult: one answered (or unanswerable) question, with the SQL or code behind it, a table and a chart."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["duckdb-shape", "pandasai", "unanswerable"]


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
            "sql": self.sql, "code": self.code, "columns": list(self.columns), "table": rows,
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
