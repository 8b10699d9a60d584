"""Natural-language data questions from a person (the app's Data page)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentops.core.ledger import Event
from agentops.db import open_store
from agentops.governance.users import CAN_OPERATE, require_user
from agentops.service.runs import actor_of, project_path

if TYPE_CHECKING:
    pass



def list_datasets() -> list[str]:
    from agentops.data import list_datasets as datasets_under  # duckdb stays off the CLI's cold start

    return sorted(datasets_under(project_path()))


def ask_data(dataset: str, question: str, *, user: str | None) -> dict[str, Any]:
    """A question to a dataset from a person (the app's Data page); recorded in the ledger."""
    from agentops.data import answer_question  # duckdb stays off the CLI's cold start

    st = open_store()
    require_user(st, user, CAN_OPERATE, "asking the data")
    result = answer_question(dataset, question, root=project_path())
    record = result.to_record(max_rows=200)
    st.append_events([Event(actor=actor_of(user), action="data.query",
                            payload={"dataset": dataset, "question": question, "method": result.method,
                                     "sql": result.sql, "code": result.code, "answer": result.answer})])
    return record | {"chart_png": result.chart_png}
