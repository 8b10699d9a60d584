"""query_data: a plain-English question about a project dataset (data/*.csv, *.parquet), answered with numbers.

Supported shapes (top-N, by-month, below-average) are answered with DuckDB and no model; other questions need a
configured model, whose code runs in a sandbox. Reads only: charts go to .agentops/charts/<sha256>.png, stored
once by content, so a retried step writes nothing new.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

MAX_ROWS = 50


class QueryDataArgs(BaseModel):
    dataset: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                         description="Dataset name, e.g. 'sales' (a file under the project's data/ folder).")
    question: str = Field(min_length=3, max_length=500,
                          description="The question in plain English, e.g. 'top 5 products by revenue', "
                                      "'revenue by month', 'which regions are below average on revenue'.")


def query_data(dataset: str, question: str) -> dict[str, Any]:
    """Answer the question; returns the answer, the SQL or code behind it, up to 50 rows and the chart's path."""
    from agentops.data import answer_question, save_chart
    from agentops.engine.project import project_root

    root = project_root()
    result = answer_question(dataset, question, root=root)
    record = result.to_record(max_rows=MAX_ROWS)
    if result.chart_png:
        record["chart"] = save_chart(result.chart_png, root)
    return record


TOOLS = [StructuredTool.from_function(
    func=query_data, name="query_data", args_schema=QueryDataArgs,
    description="Answer a question about a dataset with numbers from the data: 'top N <things> by <measure>', "
                "'<measure> by month', 'which <things> are below average on <measure>' (other questions need a "
                "configured model). Returns the answer, the SQL, a table and a chart path.")]
