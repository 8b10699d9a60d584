"""answer_question: a plain-English question about a dataset, answered by DuckDB shapes or model-written code.

A question of a supported shape (top-N, by-month, below-average) is answered with SQL and no model, whatever
model is configured. Any other question goes to the configured model, which writes pandas/DuckDB code through
pandasai's prompt; the code runs in the sandbox. With the playbook model (no model configured), such a question
gets a plain "cannot answer" result listing the shapes that work.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from agentops.data.datasets import (
    Column,
    Dataset,
    DatasetReadError,
    connect,
    declared_formats,
    describe,
    quote_identifier,
    resolve_dataset,
)
from agentops.data.result import Format, QueryResult, format_value, json_safe, rows_as_records, table_formats
from agentops.data.sandbox import SandboxError, run_sandboxed
from agentops.data.shapes import SUPPORTED_SHAPES, answer_shape, parse_question
from agentops.engine.project import project_root
from agentops.settings import get_settings

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from agentops.data.sandbox import SandboxLimits, SandboxOutput

CHARTS_DIR = Path(".agentops") / "charts"


def answer_question(dataset: str, question: str, model: BaseChatModel | None = None, *, root: Path | None = None,
                    limits: SandboxLimits | None = None, chart: bool = True) -> QueryResult:
    """Answer `question` about the dataset named `dataset` (UnknownDatasetError if there is none).

    `model` defaults to the configured model (AGENTOPS_MODEL; unset: the playbook model, which writes no code).
    `chart=False` skips drawing the PNG for shape answers.
    """
    started = time.perf_counter()
    root = (root or project_root()).resolve()
    found = resolve_dataset(dataset, root)
    try:
        return _answer(found, question, model, root=root, limits=limits, chart=chart, started=started)
    except duckdb.Error as exc:
        detail = " ".join(str(exc).split("\n")[0].split())
        raise DatasetReadError(f"cannot read dataset '{found.name}' ({found.path.name}): {detail[:200]}") from None


def _answer(found: Dataset, question: str, model: BaseChatModel | None, *, root: Path,
            limits: SandboxLimits | None, chart: bool, started: float) -> QueryResult:
    con = connect(found)
    try:
        columns = describe(con, found)
        shape = parse_question(question, columns)
        if shape is not None:
            result = answer_shape(shape, found, columns, con, question, chart=chart)
        else:
            chat_model = model if model is not None else configured_model(root)
            if chat_model is None or _is_playbook(chat_model):
                result = unanswerable(question, found, columns)
            else:
                result = answer_with_model(question, found, con, chat_model, limits)
    finally:
        con.close()
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


def configured_model(root: Path) -> BaseChatModel | None:
    """The configured chat model, or None when that is the playbook model (which cannot write code)."""
    from agentops.agents.models.factory import get_chat_model  # langchain only when a model is configured

    model, _ = get_chat_model(get_settings().model, root=root)
    return None if _is_playbook(model) else model


def _is_playbook(model: BaseChatModel) -> bool:
    from agentops.agents.models.playbook import PlaybookChatModel  # langchain only when a model is configured

    return isinstance(model, PlaybookChatModel)


def unanswerable(question: str, dataset: Dataset, columns: list[Column]) -> QueryResult:
    shapes = "; ".join(SUPPORTED_SHAPES)
    answer = (f"I cannot answer that from '{dataset.name}' without a language model (none is configured, or the "
              f"question is not one I can answer with SQL alone). Questions I can answer: {shapes}. "
              f"Columns: {', '.join(c.name for c in columns)}.")
    return QueryResult(question=question, dataset=dataset.name, method="unanswerable", answer=answer)


def answer_with_model(question: str, dataset: Dataset, con: duckdb.DuckDBPyConnection, model: BaseChatModel,
                      limits: SandboxLimits | None = None) -> QueryResult:
    """pandasai writes the code through `model`; the sandbox runs it. Failures come back as a result with `error`."""
    from agentops.data.pandasai_adapter import CodeGenerationError, generate_code  # pandasai, pandas: only for models

    table = quote_identifier(dataset.name)
    head = con.execute(f"SELECT * FROM {table} LIMIT 5").df()
    total = int((con.execute(f"SELECT COUNT(*) FROM {table}").fetchone() or (0,))[0])

    def result(**fields: Any) -> QueryResult:
        return QueryResult(question=question, dataset=dataset.name, method="pandasai", **fields)

    try:
        generated = generate_code(question, head, table=dataset.name, total_rows=total, model=model)
    except CodeGenerationError as exc:
        return result(answer=f"Could not answer: {exc}", error=str(exc))
    try:
        output = run_sandboxed(generated.code, dataset, table=dataset.name, limits=limits)
    except SandboxError as exc:
        return result(answer=f"Could not answer: {exc}", code=generated.code, model=generated.model, error=str(exc))
    table_rows = rows_as_records(output.columns, [tuple(r) for r in output.value]) if output.kind == "dataframe" else []
    formats = table_formats(output.columns, table_rows, declared_formats(dataset))
    return result(answer=_describe_output(output, formats), code=generated.code, sql=";\n".join(output.sql) or None,
                  table=table_rows, columns=output.columns, formats=formats, chart_png=output.chart_png,
                  model=generated.model, refusals=output.refusals)


def _describe_output(output: SandboxOutput, formats: dict[str, Format]) -> str:
    if output.kind == "plot":
        return "A chart (attached)."
    if output.kind == "number":
        value = output.value
        return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
    if output.kind == "dataframe":
        rows = output.records()
        if not rows:
            return "No rows."
        shown = "; ".join(", ".join(f"{k}: {_cell(v, formats.get(k))}" for k, v in row.items()) for row in rows[:5])
        more = f" (and {output.row_count - 5} more rows)" if output.row_count > 5 else ""
        return f"{output.row_count} row{'s' if output.row_count != 1 else ''}: {shown}{more}."
    return str(output.value)


def _cell(value: Any, fmt: Format | None) -> str:
    """A cell as the table shows it: its column's format, or 2 decimals for a float of no known column."""
    if fmt is not None:
        return format_value(json_safe(value), fmt)
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def save_chart(png: bytes, root: Path) -> dict[str, Any]:
    """Store a chart once under <root>/.agentops/charts/<sha256>.png; its project-relative path, digest and size."""
    digest = hashlib.sha256(png).hexdigest()
    relative = CHARTS_DIR / f"{digest}.png"
    path = root / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # threads may store the same chart at once
        partial.write_bytes(png)
        os.replace(partial, path)
    return {"path": relative.as_posix(), "sha256": digest, "bytes": len(png), "mime": "image/png"}


def load_chart(sha256: str, root: Path) -> bytes | None:
    """The PNG stored by save_chart under this digest; None when the digest is malformed or nothing is stored."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return None
    path = root / CHARTS_DIR / f"{sha256}.png"
    return path.read_bytes() if path.is_file() else None
