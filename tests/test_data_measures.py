"""Each measure aggregates as its dataset declares (data/<name>.yaml): prices are averaged, amounts summed.

The expected figures are computed here with pandas from the same CSV, not with the engine's SQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from agentops.data.query import answer_question
from agentops.errors import ConfigError

REPO_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(REPO_DATA / "sales.csv", tmp_path / "data" / "sales.csv")
    shutil.copy(REPO_DATA / "sales.yaml", tmp_path / "data" / "sales.yaml")
    return tmp_path


def frame() -> pd.DataFrame:
    return pd.read_csv(REPO_DATA / "sales.csv", parse_dates=["date"])


def test_top_products_by_unit_price_are_ranked_by_the_average_price_not_the_sum(root: Path) -> None:
    result = answer_question("sales", "top 3 products by unit_price", root=root, chart=False)
    expected = frame().groupby("product")["unit_price"].mean().sort_values(ascending=False).head(3)
    assert [r["product"] for r in result.table] == list(expected.index)
    assert [r["unit_price"] for r in result.table] == pytest.approx(list(expected.values))
    summed = frame().groupby("product")["unit_price"].sum().sort_values(ascending=False).head(3)
    assert [r["unit_price"] for r in result.table] != pytest.approx(list(summed.values))
    assert "AVG(\"unit_price\")" in result.sql and "SUM" not in result.sql
    assert result.answer.startswith("Top 3 products by average unit price:")


def test_revenue_stays_a_sum_in_every_shape(root: Path) -> None:
    top = answer_question("sales", "top 2 regions by revenue", root=root, chart=False)
    expected = frame().groupby("region")["revenue"].sum().sort_values(ascending=False).head(2)
    assert [r["revenue"] for r in top.table] == pytest.approx(list(expected.values))
    monthly = answer_question("sales", "revenue by month", root=root, chart=False)
    by_month = frame().groupby(frame()["date"].dt.to_period("M"))["revenue"].sum()
    assert [r["revenue"] for r in monthly.table] == pytest.approx(list(by_month.values))


def test_an_averaged_measure_by_month_and_below_average_use_the_average(root: Path) -> None:
    monthly = answer_question("sales", "unit_price by month", root=root, chart=False)
    by_month = frame().groupby(frame()["date"].dt.to_period("M"))["unit_price"].mean()
    assert [r["unit_price"] for r in monthly.table] == pytest.approx(list(by_month.values))
    assert monthly.answer.startswith("Average unit price by month")
    below = answer_question("sales", "which regions are below average on unit_price", root=root, chart=False)
    per_region = frame().groupby("region")["unit_price"].mean()
    expected = sorted(per_region[per_region < per_region.mean()].index)
    assert sorted(r["region"] for r in below.table) == expected
    assert "below the mean unit price of" in below.answer and "average average" not in below.answer


def test_an_undeclared_measure_is_summed_and_a_declaration_changes_it(root: Path) -> None:
    (root / "data" / "sales.yaml").unlink()
    summed = answer_question("sales", "top 1 products by unit_price", root=root, chart=False)
    assert "SUM(\"unit_price\")" in summed.sql
    (root / "data" / "sales.yaml").write_text("measures:\n  unit_price: max\n")
    highest = answer_question("sales", "top 1 products by unit_price", root=root, chart=False)
    assert highest.table[0]["unit_price"] == pytest.approx(frame()["unit_price"].max())
    assert "by highest unit price" in highest.answer


@pytest.mark.parametrize(("text", "message"), [
    ("measures:\n  revenue: sum\n  unit_price: mean\n", "data/sales.yaml:3: measures.unit_price"),
    ("measures:\n  revenue: sum\nmeasure:\n  units: sum\n", "data/sales.yaml:3: measure: unknown key"),
    ("measures: [revenue]\n", "data/sales.yaml:1: measures"),
    ("- revenue\n", "data/sales.yaml:1: expected a mapping"),
    ("measures:\n  revenue: SUM); DROP TABLE sales; --\n", "data/sales.yaml:2: measures.revenue"),
])
def test_a_malformed_declaration_is_one_error_naming_the_line(root: Path, text: str, message: str) -> None:
    (root / "data" / "sales.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        answer_question("sales", "top 3 products by revenue", root=root, chart=False)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)
