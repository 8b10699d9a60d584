"""Sales analysis: plain-English questions over the sales data, a short report with a chart, emailed.

Each question is a governed `query_data` call and the report a governed `send_email`: screened by the
policy and recorded as steps, like any agent's tool calls. The demo schedules it on weekdays at 09:00.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentops import flow, get_run_logger, task
from agentops.agents import Agent
from agentops.data import format_value
from agentops.data.names import KnownDataset

Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
"""An address as written; which domains may be mailed is the policy's to say (send_email's rule)."""
Question = Annotated[str, Field(min_length=3, max_length=500)]

QUESTIONS = ["top 5 products by revenue", "revenue by month", "which regions are below average on revenue"]
DEFAULT_RECIPIENTS = ["managers@example.com"]

analyst = Agent(name="analyst", prompt="analyst", tools=["query_data", "send_email"])


@task
def write_report(dataset: str, findings: list[dict]) -> dict:
    """The email: one finding per question, the rows behind it, and the charts attached by content hash."""
    lines = [f"Sales analysis of '{dataset}'", ""]
    for finding in findings:
        lines.append(f"* {finding['question']}")
        lines.append(f"  {finding['answer']}")
        for row in finding.get("rows", [])[:12]:
            formats = finding.get("formats") or {}
            lines.append("    " + ", ".join(f"{k}: {_cell(v, formats.get(k))}" for k, v in row.items()))
        lines.append("")
    lines.append("Answers come from the data (DuckDB over the dataset); the SQL is recorded on each run step.")
    charts = [{"name": f"chart-{n}.png", "chart": f["chart"]["sha256"]}
              for n, f in enumerate(findings, start=1) if f.get("chart")]
    answered = sum(1 for f in findings if f["answered"])
    return {"subject": f"Sales analysis: {answered} of {len(findings)} questions answered", "body": "\n".join(lines),
            "attachments": charts}


def _cell(value: object, fmt: str | None) -> str:
    """A cell as the answer's sentence and the app's table write it (money 2 decimals, integers, months)."""
    if fmt in ("money", "integer", "number", "percent", "date", "month", "text"):
        return format_value(value, fmt)  # type: ignore[arg-type]
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


@flow
def sales_analysis(dataset: KnownDataset = "sales",
                   recipients: Annotated[list[Address], Field(min_length=1, max_length=20)] | None = None,
                   questions: Annotated[list[Question], Field(min_length=1, max_length=10)] | None = None) -> dict:
    """Ask the sales data the standing questions, write a short report with charts, and email it."""
    log = get_run_logger()
    findings = []
    for question in questions or QUESTIONS:
        outcome = analyst.use("query_data", dataset=dataset, question=question)
        record = outcome.result if outcome.status == "ok" and isinstance(outcome.result, dict) else {}
        answered = bool(record) and record.get("method") != "unanswerable"
        findings.append({"question": question, "answered": answered,
                         "answer": record.get("answer") or f"not answered ({outcome.status}): {outcome.content[:300]}",
                         "rows": record.get("table", []), "formats": record.get("formats", {}),
                         "chart": record.get("chart")})
        log.info("%s -> %s", question, findings[-1]["answer"])
    report = write_report(dataset, findings)
    sent = analyst.use("send_email", to=recipients or DEFAULT_RECIPIENTS, subject=report["subject"],
                       body=report["body"], attachments=report["attachments"])
    return {"subject": report["subject"], "findings": [(f["question"], f["answer"]) for f in findings],
            "email": sent.status, "charts": len(report["attachments"])}
