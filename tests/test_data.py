"""Natural-language data queries: DuckDB shapes checked against pandas, the pandasai path (the sandbox itself:
tests/test_sandbox.py)."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from langchain_core.messages import AIMessage

from agentops.agents.models.scripted import ScriptedChatModel
from agentops.backends.sales_data import write_sales_csv
from agentops.data import (
    SUPPORTED_SHAPES,
    QueryResult,
    UnknownDatasetError,
    answer_question,
    parse_question,
)
from agentops.data.datasets import Column
from agentops.errors import AgentOpsError

ROOT = Path(__file__).resolve().parent.parent
SALES_COLUMNS = [Column("date", "DATE"), Column("region", "VARCHAR"), Column("product", "VARCHAR"),
                 Column("units", "BIGINT"), Column("unit_price", "DOUBLE"), Column("revenue", "DOUBLE")]


@pytest.fixture
def sales_project(sqlite_project: Path) -> Path:
    """A project with the committed sample data (which the generator is checked to reproduce)."""
    (sqlite_project / "data").mkdir()
    shutil.copyfile(ROOT / "data" / "sales.csv", sqlite_project / "data" / "sales.csv")
    return sqlite_project


@pytest.fixture(scope="module")
def sales_frame() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "sales.csv", parse_dates=["date"])


def scripted(code: str) -> ScriptedChatModel:
    return ScriptedChatModel(replies=[AIMessage(f"Here is the code:\n```python\n{code}\n```")])


# -- shapes, checked against pandas ------------------------------------------------------------------------------


def test_top_n_products_by_revenue_match_a_pandas_groupby(sales_project: Path, sales_frame: pd.DataFrame) -> None:
    result = answer_question("sales", "top 5 products by revenue")
    expected = sales_frame.groupby("product")["revenue"].sum().sort_values(ascending=False).head(5)
    assert result.method == "duckdb-shape" and result.columns == ["product", "revenue"]
    assert [r["product"] for r in result.table] == list(expected.index)
    assert [r["revenue"] for r in result.table] == pytest.approx(list(expected.values))
    assert result.answer.startswith(f"Top 5 products by revenue: {expected.index[0]} (")
    assert result.sql is not None and 'LIMIT 5' in result.sql and 'FROM "sales"' in result.sql


def test_bottom_n_and_synonyms_rank_ascending_on_the_right_column(sales_project: Path,
                                                                   sales_frame: pd.DataFrame) -> None:
    result = answer_question("sales", "Show me the bottom 2 regions by quantity?")
    expected = sales_frame.groupby("region")["units"].sum().sort_values().head(2)
    assert [(r["region"], r["units"]) for r in result.table] == list(expected.items())


def test_revenue_by_month_matches_pandas_and_rises_through_the_year(sales_project: Path,
                                                                    sales_frame: pd.DataFrame) -> None:
    result = answer_question("sales", "revenue by month")
    expected = sales_frame.groupby(sales_frame["date"].dt.to_period("M"))["revenue"].sum()
    assert [r["month"] for r in result.table] == [f"{p}-01" for p in expected.index.astype(str)]
    assert [r["revenue"] for r in result.table] == pytest.approx(list(expected.values))
    assert expected.iloc[-1] > 1.4 * expected.iloc[0], "the sample data should show a visible trend"
    assert "2026-12" in result.answer and "above 2026-01" in result.answer


def test_trends_by_month_defaults_to_revenue(sales_project: Path) -> None:
    trends = answer_question("sales", "trends by month")
    assert trends.method == "duckdb-shape" and trends.columns == ["month", "revenue"]
    assert trends.table == answer_question("sales", "monthly revenue").table


def test_underperforming_regions_are_those_below_the_average_region_total(sales_project: Path,
                                                                          sales_frame: pd.DataFrame) -> None:
    totals = sales_frame.groupby("region")["revenue"].sum()
    expected = totals[totals < totals.mean()].sort_values()
    for question in ("underperforming regions", "Which regions are below average on revenue?"):
        result = answer_question("sales", question)
        assert [r["region"] for r in result.table] == list(expected.index) == ["Central"]
        assert result.table[0]["revenue"] == pytest.approx(expected.iloc[0])
        assert result.table[0]["average_revenue"] == pytest.approx(totals.mean())
    assert "Central" in result.answer and "below the average revenue" in result.answer


@pytest.mark.parametrize(("question", "kind", "dimension", "measure", "limit"), [
    ("top 5 products by revenue", "top_n", "product", "revenue", 5),
    ("What are the top three regions by units?", "top_n", "region", "units", 3),
    ("top selling products by sales", "top_n", "product", "revenue", 5),
    ("TOP 10 PRODUCTS BY TOTAL REVENUE", "top_n", "product", "revenue", 10),
    ("revenue by month", "by_month", None, "revenue", None),
    ("Trends by month", "by_month", None, "revenue", None),
    ("show me monthly units", "by_month", None, "units", None),
    ("what is the revenue trend by month?", "by_month", None, "revenue", None),
    ("underperforming regions", "below_average", "region", "revenue", None),
    ("which regions are underperforming?", "below_average", "region", "revenue", None),
    ("which product is below average on units", "below_average", "product", "units", None),
])
def test_wordings_of_the_documented_shapes_parse(question: str, kind: str, dimension: str | None, measure: str,
                                                 limit: int | None) -> None:
    shape = parse_question(question, SALES_COLUMNS)
    assert shape is not None, question
    assert (shape.kind, shape.dimension, shape.measure, shape.limit) == (kind, dimension, measure, limit)


@pytest.mark.parametrize("question", [
    "what is the average unit price in March?",  # an aggregate other than a sum
    "top 5 products by revenue in the North region",  # a filter the shape would silently drop
    "revenue by month for Laptops",
    "top 5 customers by revenue",  # no such column
    "top 5 products by region",  # the measure is not numeric
    "top 5 products by revenue growth",
    "which regions are below average monthly revenue",  # not a comparison of totals
    "hello",
])
def test_questions_outside_the_shapes_are_not_parsed(question: str) -> None:
    assert parse_question(question, SALES_COLUMNS) is None


def test_unmatched_question_with_the_playbook_model_is_unanswerable_and_lists_the_shapes(sales_project: Path) -> None:
    assert "AGENTOPS_MODEL" not in os.environ and "OPENAI_API_KEY" not in os.environ
    result = answer_question("sales", "what is the average unit price in March?")
    assert result.method == "unanswerable" and result.sql is None and result.code is None and result.table == []
    assert "cannot answer" in result.answer
    assert all(shape in result.answer for shape in SUPPORTED_SHAPES)
    assert "unit_price" in result.answer, "the answer should name the columns there are"


@pytest.mark.parametrize("question", [
    "top 5 products by revenue; DROP TABLE sales",
    'top 5 products" FROM sales; SELECT 1 -- by revenue',
    "top 5 products by revenue) UNION SELECT * FROM read_csv_auto('/etc/passwd') --",
    "revenue'; COPY sales TO '/tmp/x.csv' -- by month",
])
def test_sql_looking_questions_are_refused_not_executed(sales_project: Path, question: str) -> None:
    result = answer_question("sales", question)
    assert result.method == "unanswerable" and result.sql is None and result.table == []


def test_column_names_are_quoted_identifiers(sqlite_project: Path) -> None:
    (sqlite_project / "data").mkdir()
    (sqlite_project / "data" / "orders.csv").write_text("region,order\nNorth,3\nSouth,5\nNorth,4\n")
    result = answer_question("orders", "top 2 regions by order")
    assert result.sql is not None and 'SUM("order") AS "order"' in result.sql
    assert [(r["region"], r["order"]) for r in result.table] == [("North", 7), ("South", 5)]


def test_unknown_dataset_is_one_line_naming_the_available_ones(sales_project: Path) -> None:
    with pytest.raises(UnknownDatasetError) as caught:
        answer_question("customers", "top 5 products by revenue")
    message = str(caught.value)
    assert message == "unknown dataset 'customers'; available: sales"
    assert isinstance(caught.value, AgentOpsError) and isinstance(caught.value, ValueError)


def test_a_corrupt_dataset_file_is_one_line_naming_it(sqlite_project: Path) -> None:
    from agentops.data import DatasetReadError

    (sqlite_project / "data").mkdir()
    (sqlite_project / "data" / "orders.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DatasetReadError) as caught:
        answer_question("orders", "top 5 products by revenue")
    message = str(caught.value)
    assert message.startswith("cannot read dataset 'orders' (orders.parquet): ") and "\n" not in message


def test_parquet_and_duckdb_tables_are_datasets_too(sqlite_project: Path) -> None:
    import duckdb

    data = sqlite_project / "data"
    data.mkdir()
    pd.DataFrame({"product": ["a", "b", "a"], "revenue": [1.0, 5.0, 2.0]}).to_parquet(data / "shop.parquet")
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE stock AS SELECT * FROM (VALUES ('x', 2), ('y', 9)) t(product, units)")
    assert answer_question("shop", "top 1 product by revenue").table == [{"product": "b", "revenue": 5.0}]
    assert answer_question("stock", "top 1 product by units").table == [{"product": "y", "units": 9}]


def test_shape_answers_carry_a_png_chart_and_a_json_safe_record(sales_project: Path) -> None:
    result = answer_question("sales", "revenue by month")
    assert result.chart_png is not None and result.chart_png.startswith(b"\x89PNG")
    assert len(result.chart_png) < 60_000, "charts stay small"
    record = json.loads(json.dumps(result.to_record()))
    assert record["chart"] == {"sha256": result.chart_sha256, "bytes": len(result.chart_png), "mime": "image/png"}
    assert record["table"][0]["month"] == "2026-01-01" and record["rows"] == 12
    inline = result.to_record(chart_data=True)["chart"]
    assert base64.b64decode(inline["base64"]) == result.chart_png
    assert QueryResult.model_validate_json(result.model_dump_json()) == result


def test_a_million_row_parquet_dataset_answers_a_grouped_question_correctly(sqlite_project: Path) -> None:
    """Correctness at scale; the speed is measured in bench/data_query.py, not here."""
    rng = np.random.default_rng(7)
    n = 1_000_000
    frame = pd.DataFrame({"date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
                          "product": rng.choice([f"p{i}" for i in range(8)], n),
                          "revenue": rng.random(n) * 100})
    (sqlite_project / "data").mkdir()
    frame.to_parquet(sqlite_project / "data" / "big.parquet")
    result = answer_question("big", "top 5 products by revenue", chart=False)
    expected = frame.groupby("product")["revenue"].sum().sort_values(ascending=False).head(5)
    assert [r["product"] for r in result.table] == list(expected.index)
    assert [r["revenue"] for r in result.table] == pytest.approx(list(expected.values))


def test_sample_data_script_is_deterministic_and_matches_the_committed_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_sales_csv(first)
    write_sales_csv(second)
    assert first.read_bytes() == second.read_bytes() == (ROOT / "data" / "sales.csv").read_bytes()


# -- model-written code (pandasai prompt, our sandbox) ---------------------------------------------------------------


def test_model_written_code_runs_in_the_sandbox_and_is_recorded(sales_project: Path,
                                                                sales_frame: pd.DataFrame) -> None:
    sql = "SELECT region, AVG(unit_price) AS avg_price FROM sales GROUP BY region ORDER BY avg_price DESC"
    model = scripted(f"import pandas as pd\nprices = execute_sql_query({sql!r})\n"
                     "result = {'type': 'dataframe', 'value': prices}")
    result = answer_question("sales", "what is the average unit price per region?", model=model)
    expected = sales_frame.groupby("region")["unit_price"].mean().sort_values(ascending=False)
    assert result.method == "pandasai" and result.error is None and result.model == "scripted"
    assert result.code is not None and "execute_sql_query" in result.code and result.sql == sql
    assert [r["region"] for r in result.table] == list(expected.index)
    assert [r["avg_price"] for r in result.table] == pytest.approx(list(expected.values))
    prompt = model.calls[0][-1].content
    assert 'table_name="sales"' in prompt and "what is the average unit price per region?" in prompt
    assert 'dimensions="4410x6"' in prompt, "the prompt should report the whole dataset's size, not the sample's"


def test_model_written_plot_comes_back_as_a_png(sales_project: Path) -> None:
    model = scripted("import matplotlib.pyplot as plt\n"
                     "totals = execute_sql_query('SELECT region, SUM(units) AS units FROM sales GROUP BY 1')\n"
                     "totals.plot.bar(x='region', y='units')\nplt.savefig('units.png')\n"
                     "result = {'type': 'plot', 'value': 'units.png'}")
    result = answer_question("sales", "plot units per region as bars", model=model)
    assert result.error is None and result.chart_png is not None and result.chart_png.startswith(b"\x89PNG")


def test_model_code_that_breaks_out_is_an_error_result_with_the_code(sales_project: Path) -> None:
    model = scripted("rows = execute_sql_query('SELECT 1 AS x FROM sales')\n"
                     "result = {'type': 'string', 'value': open('/etc/passwd').read()}")
    result = answer_question("sales", "who has shell access?", model=model)
    assert result.method == "pandasai" and result.table == [] and "root:" not in result.answer
    assert result.error is not None and "refused reading /etc/passwd" in result.error
    assert result.code is not None and "/etc/passwd" in result.code


def test_model_code_querying_other_tables_is_refused_before_it_runs(sales_project: Path) -> None:
    model = scripted("rows = execute_sql_query('SELECT * FROM secrets')\nresult = {'type': 'dataframe', 'value': rows}")
    result = answer_question("sales", "list everything in secrets", model=model)
    assert result.error is not None and "unauthorized table: secrets" in result.error and result.code is None


def test_model_reply_without_code_is_an_error_result(sales_project: Path) -> None:
    model = ScriptedChatModel(replies=[AIMessage("I would rather not write code today.")])
    result = answer_question("sales", "what is the median order size?", model=model)
    assert result.method == "pandasai" and result.error is not None and "no usable code" in result.error


def test_shape_questions_never_call_the_model(sales_project: Path) -> None:
    model = ScriptedChatModel(replies=[])
    assert answer_question("sales", "top 3 products by revenue", model=model).method == "duckdb-shape"
    assert model.calls == []


# -- the tool ----------------------------------------------------------------------------------------------------------


def test_query_data_tool_returns_a_small_record_and_stores_the_chart_once(ops_project: Path) -> None:
    from agentops.engine.toolkit import is_side_effect, load_tools
    from agentops.governance.policy import load_project_policy

    write_sales_csv(ops_project / "data" / "sales.csv")
    tool = load_tools(ops_project)["query_data"]
    assert not is_side_effect(tool) and "query_data" in load_project_policy(ops_project).rules
    first = tool.invoke({"dataset": "sales", "question": "top 5 products by revenue"})
    again = tool.invoke({"dataset": "sales", "question": "top 5 products by revenue"})
    json.dumps(first)
    assert first["method"] == "duckdb-shape" and len(first["table"]) == 5 and first["sql"].startswith("SELECT")
    chart = first["chart"]
    assert chart == again["chart"] and chart["path"] == f".agentops/charts/{chart['sha256']}.png"
    assert (ops_project / chart["path"]).read_bytes().startswith(b"\x89PNG")
    assert list((ops_project / ".agentops" / "charts").iterdir()) == [ops_project / chart["path"]]
    by_day = tool.invoke({"dataset": "sales", "question": "which regions are below average on revenue"})
    assert [r["region"] for r in by_day["table"]] == ["Central"]
    with pytest.raises(UnknownDatasetError, match="available: sales"):
        tool.invoke({"dataset": "nope", "question": "top 5 products by revenue"})
