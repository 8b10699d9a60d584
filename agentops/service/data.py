"""Natural-language data questions from a person (the app's Data page)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from agentops.core.ledger import Event
from agentops.db import open_store
from agentops.governance.users import CAN_OPERATE, require_user
from agentops.service.runs import actor_of, project_path

MAX_ROWS = 200

def list_datasets() -> list[str]:
    from agentops.data import list_datasets as datasets_under  # duckdb stays off the CLI's cold start

    return sorted(datasets_under(project_path()))


def ask_data(dataset: str, question: str, *, user: str | None) -> dict[str, Any]:
    """A question to a dataset from a person (the app's Data page); recorded in the ledger.

    The record of the answer, plus what the page draws: `dated_table` (the table with dates as dates), `formats` and
    `headers` per column, `altair_chart` (the interactive chart, from the same ChartSpec as `chart_png`).
    """
    from agentops.data import answer_question  # duckdb stays off the CLI's cold start
    from agentops.data.charts import altair_chart

    st = open_store()
    require_user(st, user, CAN_OPERATE, "asking the data")
    result = answer_question(dataset, question, root=project_path())
    record = result.to_record(max_rows=MAX_ROWS)
    st.append_events([Event(actor=actor_of(user), action="data.query",
                            payload={"dataset": dataset, "question": question, "method": result.method,
                                     "sql": result.sql, "code": result.code, "answer": result.answer})])
    headers = {name: result.headers.get(name) or name.replace("_", " ").capitalize() for name in result.columns}
    return record | {"chart_png": result.chart_png, "dated_table": dated_rows(record["table"], result.formats),
                     "headers": headers,
                     "altair_chart": altair_chart(result.chart) if result.chart is not None else None}


def dated_rows(rows: list[dict[str, Any]], formats: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows with each ISO date of a date or month column as a date (so a table shows and sorts it as one)."""
    dated = [name for name, fmt in formats.items() if fmt in ("date", "month")]
    return [row | {name: _date(row.get(name)) for name in dated if name in row} for row in rows]


def _date(value: Any) -> Any:
    if isinstance(value, str) and not value[10:].strip("T 0:.Z+-"):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value
