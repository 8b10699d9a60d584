"""The Data page's answers as people read them: one chart spec behind the PNG and the app's Altair chart, each
column formatted as declared (data/sales.yaml `formats:`) or by its type, the SQL whole; and the page itself
through streamlit.testing.v1.AppTest. Expected figures come from pandas over the same CSV."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from agentops import service
from agentops.backends.sales_data import ensure_sample_data
from agentops.data import ChartSpec, QueryResult, answer_question, format_value
from agentops.data.charts import altair_chart, png_figure
from agentops.engine.project import import_project_file
from agentops.errors import ConfigError
from tests import app_fixtures
from tests.test_app import BROWSER, logged_in

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
RAW_FLOAT = re.compile(r"\d\.\d{3,}")
"""A number with more than two decimals, as a person should never read one."""


@pytest.fixture
def root(sqlite_project: Path) -> Path:
    (sqlite_project / "data").mkdir()
    for name in ("sales.csv", "sales.yaml"):
        shutil.copy(REPO_DATA / name, sqlite_project / "data" / name)
    return sqlite_project


def frame() -> pd.DataFrame:
    return pd.read_csv(REPO_DATA / "sales.csv", parse_dates=["date"])


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    (12345.678901, "money", "12,345.68"),
    (0.005, "money", "0.01"),
    (-1234567.891, "number", "-1,234,567.89"),
    (1234.5, "integer", "1,234"),
    (1235.5, "integer", "1,236"),
    (3201, "integer", "3,201"),
    (7, "money", "7.00"),
    (-47.44, "percent", "-47.4%"),
    (12.0, "percent", "+12.0%"),
    ("2026-03-01", "month", "2026-03"),
    (dt.date(2026, 3, 1), "date", "2026-03-01"),
    ("North", "money", "North"),
    (None, "money", "-"),
    (math.nan, "number", "-"),
    (math.inf, "integer", "-"),
    (True, "integer", "True"),
    ("2026-03-01; DROP", "month", "2026-03-01; DROP"),
    ("2026-03-01T00:00:00", "month", "2026-03"),
    ("2026-03-01T00:00:00.000", "date", "2026-03-01"),
    ("2026-03-01T09:30:00", "date", "2026-03-01 09:30:00"),
])
def test_format_value_writes_numbers_as_people_read_them(value: Any, fmt: Any, shown: str) -> None:
    assert format_value(value, fmt) == shown


def test_top_products_by_unit_price_read_as_money_and_chart_as_average_unit_price(root: Path) -> None:
    result = answer_question("sales", "top 3 products by unit_price", root=root)
    expected = frame().groupby("product")["unit_price"].mean().sort_values(ascending=False).head(3)
    assert result.formats == {"product": "text", "unit_price": "money"}
    assert result.headers["unit_price"] == "Average unit price"
    assert not RAW_FLOAT.search(result.answer), result.answer
    for product, price in expected.items():
        assert f"{product} ({price:,.2f})" in result.answer
    spec = result.chart
    assert spec is not None and spec.kind == "bar" and spec.reference is None
    assert spec.title == "Top 3 products by average unit price" and result.answer.startswith(spec.title + ":")
    assert (spec.x_title, spec.y_title, spec.y_format) == ("Product", "Average unit price", "money")
    assert spec.labels == list(expected.index) and spec.values == pytest.approx(list(expected.values))
    assert [p["shown"] for p in spec.points()] == [f"{v:,.2f}" for v in expected.values]


def test_revenue_by_month_is_a_line_of_months_and_units_are_integers(root: Path) -> None:
    monthly = answer_question("sales", "revenue by month", root=root, chart=False)
    by_month = frame().groupby(frame()["date"].dt.to_period("M"))["revenue"].sum()
    assert monthly.formats == {"month": "month", "revenue": "money"} and monthly.chart_png is None
    spec = monthly.chart
    assert spec is not None and spec.kind == "line" and spec.x_title == "Month" and spec.y_title == "Revenue"
    assert spec.labels == [str(p) for p in by_month.index] and spec.values == pytest.approx(list(by_month.values))
    assert f"highest in {by_month.idxmax()} ({by_month.max():,.2f})" in monthly.answer
    units = answer_question("sales", "top 2 regions by units", root=root, chart=False)
    assert units.formats["units"] == "integer" and not RAW_FLOAT.search(units.answer)
    totals = frame().groupby("region")["units"].sum().sort_values(ascending=False)
    assert units.answer.endswith(f"{totals.index[1]} ({totals.iloc[1]:,}).")


def test_below_average_charts_every_group_against_the_mean_and_reads_the_gap_as_a_percent(root: Path) -> None:
    result = answer_question("sales", "which regions are below average on units", root=root)
    totals = frame().groupby("region")["units"].sum().sort_values(ascending=False)
    spec = result.chart
    assert spec is not None and spec.reference == pytest.approx(totals.mean())
    assert spec.labels == list(totals.index) and spec.values == pytest.approx(list(totals.values))
    assert [label for label, below in zip(spec.labels, spec.below, strict=True) if below] == \
        list(totals[totals < totals.mean()].index)
    assert result.formats == {"region": "text", "units": "integer", "average_units": "number",
                              "vs_average_pct": "percent"}
    gap = 100 * (totals.min() / totals.mean() - 1)
    assert f"({totals.min():,}, {gap:+.1f}% vs average)" in result.answer
    assert f"of {totals.mean():,.2f} per region" in result.answer and not RAW_FLOAT.search(result.answer)


@pytest.mark.parametrize("question", ["top 3 products by unit_price", "revenue by month",
                                      "which regions are below average on revenue"])
def test_the_png_and_the_altair_chart_are_drawn_from_one_spec(root: Path, question: str) -> None:
    spec = answer_question("sales", question, root=root, chart=False).chart
    assert spec is not None
    [ax] = png_figure(spec).axes
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (spec.title, spec.x_title, spec.y_title)
    drawn = [line.get_ydata() for line in ax.lines if line.get_marker() == "o"] if spec.kind == "line" else \
        [[bar.get_height() for bar in ax.patches]]
    assert list(drawn[0]) == pytest.approx(spec.values)
    chart = altair_chart(spec).to_dict()
    layers = chart.get("layer", [chart])
    assert chart["title"] == spec.title
    main = layers[0]
    assert main["encoding"]["x"]["title"] == spec.x_title and main["encoding"]["y"]["title"] == spec.y_title
    assert main["encoding"]["x"]["sort"] is None, "bars keep the answer's order"
    assert main["mark"]["type"] if isinstance(main["mark"], dict) else main["mark"] == \
        ("line" if spec.kind == "line" else "bar")
    values = chart["datasets"][main["data"]["name"]] if "datasets" in chart else main["data"]["values"]
    assert [v["label"] for v in values] == spec.labels
    assert [v["value"] for v in values] == pytest.approx(spec.values)
    assert [v["shown"] for v in values] == [format_value(v, spec.y_format) for v in spec.values]
    tooltips = {t["field"]: t["title"] for t in main["encoding"]["tooltip"]}
    assert tooltips["shown"] == spec.y_title and tooltips["label"] == spec.x_title
    if spec.reference is not None:
        [legend] = [text.get_text() for text in ax.get_legend().get_texts()]
        assert legend == f"average {format_value(spec.reference, spec.y_format)}", "revenue is money"
        rule = layers[1]
        rule_values = chart["datasets"][rule["data"]["name"]] if "datasets" in chart else rule["data"]["values"]
        assert rule_values[0]["reference"] == pytest.approx(spec.reference)


def test_a_chart_spec_round_trips_as_json_and_refuses_mismatched_points() -> None:
    spec = ChartSpec(kind="bar", title="t", x_title="x", y_title="y", y_format="money", labels=["a", "b"],
                     values=[1.0, 3.0], reference=2.0)
    assert ChartSpec.model_validate_json(spec.model_dump_json()) == spec and spec.below == [True, False]
    with pytest.raises(ValueError, match="1 labels for 2 values"):
        ChartSpec(kind="bar", title="t", x_title="x", y_title="y", y_format="money", labels=["a"], values=[1.0, 2.0])


def test_without_a_declaration_columns_read_by_their_type(root: Path) -> None:
    (root / "data" / "sales.yaml").unlink()
    top = answer_question("sales", "top 2 products by revenue", root=root, chart=False)
    assert top.formats == {"product": "text", "revenue": "number"} and not RAW_FLOAT.search(top.answer)
    (root / "data" / "sales.yaml").write_text("measures:\n  units: avg\n")
    averaged = answer_question("sales", "top 2 products by units", root=root, chart=False)
    assert averaged.formats["units"] == "number", "an average of integers is not an integer"
    assert re.search(r"\(\d\.\d\d\)", averaged.answer), averaged.answer


@pytest.mark.parametrize(("text", "message"), [
    ("formats:\n  revenue: money\n  unit_price: dollars\n", "data/sales.yaml:3: formats.unit_price"),
    ("formats: [revenue]\n", "data/sales.yaml:1: formats"),
    ("formats:\n  revenue: \"%,.2f'); alert(1)\"\n", "data/sales.yaml:2: formats.revenue"),
    ("format:\n  revenue: money\n", "data/sales.yaml:1: format: unknown key"),
])
def test_a_malformed_format_is_one_error_naming_its_line(root: Path, text: str, message: str) -> None:
    (root / "data" / "sales.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        answer_question("sales", "top 3 products by revenue", root=root, chart=False)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_sql_is_one_clause_a_line(root: Path) -> None:
    clauses = ("SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "WITH", "QUALIFY", ")", "  ")
    for question in ("top 3 products by unit_price", "revenue by month", "which regions are below average on units"):
        sql = answer_question("sales", question, root=root, chart=False).sql
        assert sql is not None and len(sql.splitlines()) >= 5
        assert all(line.startswith(clauses) for line in sql.splitlines()), sql


def test_model_written_tables_take_the_declared_formats_and_infer_the_rest(root: Path) -> None:
    from langchain_core.messages import AIMessage

    from agentops.agents.models.scripted import ScriptedChatModel

    sql = ("SELECT region, SUM(revenue) AS revenue, SUM(units) AS units, AVG(unit_price) AS avg_price, "
           "MIN(date) AS first_day FROM sales GROUP BY region ORDER BY region")
    code = f"rows = execute_sql_query({sql!r})\nresult = {{'type': 'dataframe', 'value': rows}}"
    model = ScriptedChatModel(replies=[AIMessage(f"```python\n{code}\n```")])
    result = answer_question("sales", "revenue, units, price and first day per region", model=model, root=root)
    assert result.error is None, result.error
    assert result.formats == {"region": "text", "revenue": "money", "units": "integer", "avg_price": "number",
                              "first_day": "date"}
    central = frame()[frame()["region"] == "Central"]
    assert (f"region: Central, revenue: {central['revenue'].sum():,.2f}, units: {central['units'].sum():,}, "
            f"avg_price: {central['unit_price'].mean():,.2f}, first_day: 2026-01-01;") in result.answer
    assert not RAW_FLOAT.search(result.answer) and "T00:00" not in result.answer


def test_init_writes_the_declarations_beside_the_sample_and_keeps_an_edited_one(tmp_path: Path) -> None:
    assert ensure_sample_data(tmp_path) == tmp_path / "data" / "sales.csv"
    assert (tmp_path / "data" / "sales.yaml").read_text() == (REPO_DATA / "sales.yaml").read_text()
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    (other / "data" / "sales.yaml").write_text("measures:\n  units: max\n")
    ensure_sample_data(other)
    assert (other / "data" / "sales.yaml").read_text() == "measures:\n  units: max\n"


def test_the_emailed_report_writes_cells_as_their_formats_say() -> None:
    flow_file = import_project_file("flows.sales_analysis", app_fixtures.ROOT / "flows" / "sales_analysis.py")
    findings = [{"question": "units by month", "answer": "...", "answered": True,
                 "rows": [{"month": "2026-03-01", "units": 41.6, "unit_price": 35.1}],
                 "formats": {"month": "month", "units": "integer", "unit_price": "money"}}]
    body = flow_file.write_report("sales", findings)["body"]
    assert "    month: 2026-03, units: 42, unit_price: 35.10" in body.splitlines()


def test_a_record_carries_the_formats_and_the_result_round_trips(root: Path) -> None:
    result = answer_question("sales", "which regions are below average on revenue", root=root)
    record = json.loads(json.dumps(result.to_record()))
    assert record["formats"] == result.formats
    assert QueryResult.model_validate_json(result.model_dump_json()) == result


# -- the page ---------------------------------------------------------------------------------------------------


@pytest.fixture
def page_project(ops_project: Path) -> Iterator[Path]:
    BROWSER.cookies.clear()
    yield app_fixtures.app_project(ops_project)
    BROWSER.cookies.clear()


def ask(question: str) -> AppTest:
    at = logged_in("otto")
    at.switch_page("app_pages/data.py").run()
    at.text_input(key="data-question").input(question)
    at.button(key="data-ask-submit").click().run()
    assert not at.exception, at.exception
    return at


def vega(at: AppTest) -> tuple[dict[str, Any], pd.DataFrame]:
    """The page's one Altair chart: its Vega-Lite spec and the data Streamlit sent with it."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    [chart] = at.get("vega_lite_chart")
    proto = chart.proto  # type: ignore[attr-defined]
    spec = json.loads(proto.spec)
    if proto.HasField("data"):
        return spec, convert_arrow_bytes_to_pandas_df(proto.data.data)
    return spec, pd.DataFrame(spec["layer"][0]["data"]["values"])  # a layered chart keeps its data inline


def test_the_page_shows_an_altair_chart_a_formatted_table_and_the_whole_sql(page_project: Path) -> None:
    at = ask("top 3 products by unit_price")
    expected = service.ask_data("sales", "top 3 products by unit_price", user="otto")
    assert f"**{expected['answer']}**" in [m.value for m in at.markdown]
    spec, data = vega(at)
    assert spec["title"] == "Top 3 products by average unit price" and spec["mark"]["type"] == "bar"
    assert spec["encoding"]["y"]["title"] == "Average unit price"
    assert list(data["label"]) == [r["product"] for r in expected["table"]]
    assert list(data["shown"]) == [f"{r['unit_price']:,.2f}" for r in expected["table"]]
    assert not at.get("imgs"), "the interactive chart replaces the static image"
    [table] = at.dataframe
    columns = json.loads(table.proto.columns)
    assert columns["unit_price"]["label"] == "Average unit price" and columns["product"]["label"] == "Product"
    assert not [m.value for m in at.markdown if "column_config" in m.value], "no stray module text on the page"
    assert columns["unit_price"]["type_config"] == {"type": "number", "format": "%,.2f"}
    assert list(table.value["product"]) == [r["product"] for r in expected["table"]]
    [sql] = [c for c in at.code if c.language == "sql"]
    assert sql.value == expected["sql"] and sql.value.endswith("LIMIT 3") and "\nFROM \"sales\"\n" in sql.value
    assert sql.proto.wrap_lines, "long lines wrap instead of being cut off"


def test_the_page_charts_months_as_a_line_and_shows_them_as_dates(page_project: Path) -> None:
    at = ask("revenue by month")
    spec, data = vega(at)
    assert spec["mark"]["type"] == "line" and spec["encoding"]["x"]["title"] == "Month"
    assert list(data["label"])[:2] == ["2026-01", "2026-02"] and len(data) == 12
    [table] = at.dataframe
    columns = json.loads(table.proto.columns)
    assert columns["month"]["type_config"] == {"type": "date", "format": "YYYY-MM"}
    assert columns["revenue"]["type_config"]["format"] == "%,.2f"
    assert table.value["month"].iloc[0] == dt.date(2026, 1, 1)


def test_the_page_highlights_groups_below_the_mean(page_project: Path) -> None:
    at = ask("which regions are below average on revenue")
    spec, data = vega(at)
    assert spec["title"] == "Revenue by region (below average in red)"
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["bar", "rule"]
    assert dict(zip(data["label"], data["status"], strict=True))["Central"] == "below average"
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["at or above average", "below average"]
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["vs_average_pct"]["type_config"]["format"] == "%.1f%%"


def test_a_question_the_page_cannot_answer_shows_no_chart_or_table(page_project: Path) -> None:
    at = ask("what is the meaning of it all")
    assert not at.get("vega_lite_chart") and not at.dataframe and not [c for c in at.code if c.language == "sql"]
    assert any("cannot answer" in m.value for m in at.markdown)
