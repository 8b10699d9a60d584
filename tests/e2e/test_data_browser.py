"""The Data page in a real Chromium: the answer's interactive chart draws and its tooltip reads formatted, the SQL
is whole. A screenshot of each answer at 1400 px goes to a temporary directory (printed) to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from agentops import service
from tests.e2e.conftest import Served
from tests.e2e.test_browser import log_in

pytestmark = pytest.mark.e2e
QUESTIONS = ["top 3 products by unit_price", "which regions are below average on revenue", "revenue by month"]


def test_the_data_page_draws_each_answers_chart_table_and_sql(
        served: Served, page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    log_in(page, f"{served.url}/data", "otto")
    shots = tmp_path_factory.mktemp("screenshots")
    for question in QUESTIONS:
        page.locator(".st-key-data-question input").fill(question)
        page.locator(".st-key-data-ask-submit button").click()
        expected = service.ask_data("sales", question, user="otto")
        expect(page.get_by_text(expected["answer"])).to_be_visible()
        canvas = page.locator(".vega-embed canvas, .vega-embed svg").first
        expect(canvas).to_be_visible()
        if question.startswith("top"):  # the tallest bar comes first: hovering its middle shows its formatted value
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5)
            tooltip = page.locator("#vg-tooltip-element")
            expect(tooltip).to_contain_text(f"{expected['table'][0]['unit_price']:,.2f}")
            expect(tooltip).to_contain_text("Average unit price")
            page.mouse.move(0, 0)
        sql = page.locator("code.language-sql, pre code").filter(has_text="FROM")
        expect(sql.first).to_contain_text(expected["sql"].splitlines()[-1])
        expect(page.locator("[data-testid=stDataFrame]")).to_be_visible()
        shot = shots / f"data-{question.replace(' ', '-')}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
