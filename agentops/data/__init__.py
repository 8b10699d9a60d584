"""Natural-language questions over the project's datasets (data/*.csv, data/*.parquet, tables in data/*.duckdb).

    from agentops.data import answer_question
    answer_question("sales", "top 5 products by revenue").answer

Supported shapes are answered by DuckDB without a model; other questions need a configured model, whose code
runs in a sandbox (agentops.data.sandbox). pandasai is imported only on that path.
"""

from __future__ import annotations

from agentops.data.datasets import Dataset, DatasetReadError, UnknownDatasetError, list_datasets, resolve_dataset
from agentops.data.query import answer_question, load_chart, save_chart
from agentops.data.result import ChartSpec, QueryResult, format_value
from agentops.data.sandbox import SandboxError, SandboxLimits, SandboxOutput, run_sandboxed
from agentops.data.shapes import SUPPORTED_SHAPES, Shape, parse_question

__all__ = [
    "SUPPORTED_SHAPES",
    "ChartSpec",
    "Dataset",
    "DatasetReadError",
    "QueryResult",
    "SandboxError",
    "SandboxLimits",
    "SandboxOutput",
    "Shape",
    "UnknownDatasetError",
    "answer_question",
    "format_value",
    "list_datasets",
    "load_chart",
    "parse_question",
    "resolve_dataset",
    "run_sandboxed",
    "save_chart",
]
