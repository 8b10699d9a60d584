"""The sales_analysis flow's report: what a manager reads in the email."""

from __future__ import annotations

from agentops.engine.project import import_project_file
from tests.app_fixtures import ROOT


def test_the_report_shows_money_rounded_and_attaches_each_chart_by_digest() -> None:
    flow_file = import_project_file("flows.sales_analysis", ROOT / "flows" / "sales_analysis.py")
    findings = [{"question": "top 2 products by revenue", "answer": "Top 2 products by revenue: ...", "answered": True,
                 "rows": [{"product": "Laptop", "revenue": 2103105.9499999997}, {"product": "Tablet", "units": 42}],
                 "chart": {"sha256": "ab" * 32}},
                {"question": "what is the meaning of it all", "answer": "not answered", "answered": False}]
    report = flow_file.write_report("sales", findings)
    assert "    product: Laptop, revenue: 2,103,105.95" in report["body"].splitlines()
    assert "    product: Tablet, units: 42" in report["body"].splitlines()
    assert report["subject"] == "Sales analysis: 1 of 2 questions answered"
    assert report["attachments"] == [{"name": "chart-1.png", "chart": "ab" * 32}]
