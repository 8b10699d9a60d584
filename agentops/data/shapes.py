"""Question shapes answered with DuckDB SQL and no model: top-N, by-month, below-average.

Words in a question are matched to the dataset's real columns (from DuckDB's DESCRIBE); only matched column
names reach the SQL, always quoted. A question with words the parser cannot account for is not a shape, so a
filter it would silently drop ("... in March") or text meant for the SQL ("; DROP TABLE") never runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import duckdb

from agentops.data import charts
from agentops.data.datasets import (
    AGGREGATE_SQL,
    AGGREGATE_WORDS,
    Column,
    Dataset,
    declared_formats,
    measure_aggregates,
    quote_identifier,
)
from agentops.data.result import ChartSpec, Format, QueryResult, format_value, rows_as_records

SUPPORTED_SHAPES = (
    "top N <things> by <measure>, e.g. 'top 5 products by revenue' (or 'bottom 3 regions by units')",
    "<measure> by month, e.g. 'revenue by month' or 'trends by month'",
    "which <things> are below average on <measure>, e.g. 'which regions are below average on revenue' "
    "or 'underperforming regions'",
)
MAX_LIMIT = 100
DEFAULT_LIMIT = 5

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
                "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20}
LEAD_INS = {"show", "me", "us", "what", "which", "who", "are", "is", "were", "was", "the", "give", "list", "plot",
            "chart", "display", "tell", "please", "can", "could", "you", "our", "my", "get", "find", "how", "did",
            "does", "do", "about", "a", "and"}
FILLERS = {"the", "total", "totals", "sum", "of", "overall", "all", "numbers", "figures", "in", "terms", "our"}
"""Words that do not change a sum. Anything else left over ("monthly", "trend", "in march") makes it not a shape."""
DIMENSION_FILLERS = {"selling", "performing", "earning", "grossing", "the", "our", "most", "best", "top"}
AGGREGATES = {"average", "avg", "mean", "median", "count", "number", "max", "maximum", "min", "minimum", "share",
              "percentage", "percent", "growth", "change", "ratio", "distinct", "unique"}
MEASURE_SYNONYMS = {"sales": "revenue", "turnover": "revenue", "income": "revenue", "money": "revenue",
                    "earnings": "revenue", "quantity": "units", "quantities": "units", "volume": "units",
                    "price": "unit_price", "prices": "unit_price"}
DEFAULT_MEASURE_WORDS = {"trend", "trends", "performance", "numbers", "figures", "results"}
DESCENDING = {"top", "best", "highest", "largest", "biggest"}
ASCENDING = {"bottom", "worst", "lowest", "smallest"}
BELOW_AVERAGE = ("below average", "below the average", "under average", "under the average", "below-average",
                 "lower than average", "lower than the average")
UNDERPERFORM = {"underperforming", "underperform", "underperforms", "underperformed", "underperformers",
                "underperformer", "lagging", "laggards"}
VERBS = {"is", "are", "was", "were", "do", "does", "did", "be", "performing", "perform", "doing", "that", "which",
         "what", "who"}
PREPOSITIONS = {"on", "in", "for", "by", "of", "at", "with", "regarding", "terms"}


@dataclass(frozen=True)
class Shape:
    kind: Literal["top_n", "by_month", "below_average"]
    measure: str
    dimension: str | None = None
    limit: int | None = None
    descending: bool = True


def normalise(question: str) -> list[str]:
    """Lowercase words. Punctuation stays attached, so a word like `revenue;` matches no column."""
    text = question.strip().lower().rstrip("?.! ")
    text = re.sub(r"\s+", " ", text.replace(",", " "))
    return text.split(" ") if text else []


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _column(words: list[str], columns: list[Column]) -> Column | None:
    """The column named by these words: exact, with underscores, singular, or a known synonym."""
    if not words or any(not re.fullmatch(r"[a-z0-9_]+", w) for w in words):
        return None
    by_name = {c.name.lower(): c for c in columns}
    candidates = ["_".join(words), "".join(words), "_".join([*words[:-1], _singular(words[-1])])]
    if len(words) == 1:
        candidates.append(MEASURE_SYNONYMS.get(words[0], ""))
    for candidate in candidates:
        if candidate in by_name:
            return by_name[candidate]
    return None


def default_measure(columns: list[Column]) -> Column | None:
    numeric = [c for c in columns if c.is_numeric]
    for preferred in ("revenue", "sales", "amount", "total"):
        for column in numeric:
            if column.name.lower() == preferred:
                return column
    return numeric[0] if numeric else None


def _measure(words: list[str], columns: list[Column]) -> Column | None:
    if any(w in AGGREGATES for w in words):
        return None
    meaningful = [w for w in words if w not in FILLERS]
    if not meaningful:
        return default_measure(columns)
    if len(meaningful) == 1 and meaningful[0] in DEFAULT_MEASURE_WORDS:
        return default_measure(columns)
    column = _column(meaningful, columns)
    return column if column is not None and column.is_numeric else None


def _dimension(words: list[str], columns: list[Column]) -> Column | None:
    meaningful = [w for w in words if w not in DIMENSION_FILLERS]
    column = _column(meaningful, columns)
    return column if column is not None and not column.is_numeric else None


def _strip_leading(words: list[str], vocabulary: set[str]) -> list[str]:
    index = 0
    while index < len(words) and words[index] in vocabulary:
        index += 1
    return words[index:]


def _split_on(words: list[str], separators: set[str]) -> tuple[list[str], list[str]] | None:
    for index, word in enumerate(words):
        if word in separators:
            return words[:index], words[index + 1:]
    return None


def parse_question(question: str, columns: list[Column]) -> Shape | None:
    """The shape of the question over these columns, or None when it is not one of SUPPORTED_SHAPES."""
    words = normalise(question)
    return _parse_top_n(words, columns) or _parse_by_month(words, columns) or _parse_below_average(words, columns)


def _parse_top_n(words: list[str], columns: list[Column]) -> Shape | None:
    index = next((i for i, w in enumerate(words) if w in DESCENDING | ASCENDING), None)
    if index is None:
        return None
    direction, lead, rest = words[index], words[:index], words[index + 1:]
    if _strip_leading(lead, LEAD_INS) or not rest:
        return None
    limit = DEFAULT_LIMIT
    if rest[0].isdigit() or rest[0] in NUMBER_WORDS:
        limit = int(rest[0]) if rest[0].isdigit() else NUMBER_WORDS[rest[0]]
        rest = rest[1:]
    split = _split_on(rest, {"by", "on"})
    if split is None or not 1 <= limit <= MAX_LIMIT:
        return None
    dimension, measure = _dimension(split[0], columns), _measure(split[1], columns)
    if dimension is None or measure is None:
        return None
    return Shape("top_n", measure.name, dimension.name, limit, descending=direction in DESCENDING)


def _parse_by_month(words: list[str], columns: list[Column]) -> Shape | None:
    if not any(c.is_temporal for c in columns):
        return None
    if len(words) >= 2 and words[-1] == "month" and words[-2] in {"by", "per", "each", "every", "over", "across"}:
        phrase = words[:-2]
    elif "monthly" in words:
        phrase = words
    else:
        return None
    phrase = [w for w in _strip_leading(phrase, LEAD_INS) if w not in {"monthly", "trend", "trends"}]
    measure = _measure(phrase, columns)
    return Shape("by_month", measure.name) if measure is not None else None


def _parse_below_average(words: list[str], columns: list[Column]) -> Shape | None:
    text = " ".join(words)
    for phrase in BELOW_AVERAGE:
        marker = f" {phrase} "
        if marker in f" {text} ":
            before, _, after = f" {text} ".partition(marker)
            left, right = before.split(), after.split()
            break
    else:
        index = next((i for i, w in enumerate(words) if w in UNDERPERFORM), None)
        if index is None:
            return None
        left, right = words[:index], words[index + 1:]
        if not [w for w in left if w not in LEAD_INS | VERBS]:
            split = _split_on(right, PREPOSITIONS)
            left, right = (split if split else (right, []))
    left = [w for w in _strip_leading(left, LEAD_INS) if w not in VERBS]
    right = _strip_leading(right, PREPOSITIONS)
    dimension, measure = _dimension(left, columns), _measure(right, columns)
    if dimension is None or measure is None:
        return None
    return Shape("below_average", measure.name, dimension.name)


# -- SQL and answers ---------------------------------------------------------------------------------------------


def _date_column(columns: list[Column]) -> Column:
    temporal = [c for c in columns if c.is_temporal]
    return next((c for c in temporal if c.name.lower() in ("date", "day", "order_date")), temporal[0])


def shape_sql(shape: Shape, dataset: Dataset, columns: list[Column]) -> str:
    """The one SQL statement that answers the shape, one clause a line; identifiers come from `columns`, quoted."""
    known = {c.name for c in columns}
    if shape.measure not in known or (shape.dimension is not None and shape.dimension not in known):
        raise ValueError(f"shape names a column the dataset does not have: {shape}")
    table, measure = quote_identifier(dataset.name), quote_identifier(shape.measure)
    grouped = f"{AGGREGATE_SQL[_aggregate(shape, dataset)]}({measure})"
    if shape.kind == "top_n":
        dim = quote_identifier(shape.dimension or "")
        order = "DESC" if shape.descending else "ASC"
        return "\n".join([f"SELECT {dim}, {grouped} AS {measure}", f"FROM {table}", f"WHERE {dim} IS NOT NULL",
                          "GROUP BY 1", f"ORDER BY 2 {order}, 1", f"LIMIT {int(shape.limit or DEFAULT_LIMIT)}"])
    if shape.kind == "by_month":
        date = quote_identifier(_date_column(columns).name)
        return "\n".join([f"SELECT CAST(date_trunc('month', {date}) AS DATE) AS \"month\", {grouped} AS {measure}",
                          f"FROM {table}", f"WHERE {date} IS NOT NULL", "GROUP BY 1", "ORDER BY 1"])
    dim = quote_identifier(shape.dimension or "")
    average = quote_identifier(f"average_{shape.measure}")
    return "\n".join([
        "WITH totals AS (", f"  SELECT {dim}, {grouped} AS {measure}", f"  FROM {table}", f"  WHERE {dim} IS NOT NULL",
        "  GROUP BY 1", ")",
        f"SELECT {dim}, {measure}, AVG({measure}) OVER () AS {average}, "
        f"round(100 * ({measure} / AVG({measure}) OVER () - 1), 1) AS \"vs_average_pct\"",
        "FROM totals", f"QUALIFY {measure} < AVG({measure}) OVER ()", "ORDER BY 2, 1"])


def _aggregate(shape: Shape, dataset: Dataset) -> str:
    return measure_aggregates(dataset).get(shape.measure, "sum")


def _measure_label(shape: Shape, dataset: Dataset) -> str:
    return AGGREGATE_WORDS[_aggregate(shape, dataset)] + _label(shape.measure)


def measure_format(shape: Shape, dataset: Dataset, columns: list[Column]) -> Format:
    """How the grouped measure reads: as declared, else integer for a count or a sum/min/max of integers."""
    declared = declared_formats(dataset).get(shape.measure)
    if declared is not None:
        return declared
    aggregate = _aggregate(shape, dataset)
    column = next(c for c in columns if c.name == shape.measure)
    return "integer" if aggregate == "count" or (column.is_integer and aggregate != "avg") else "number"


def shape_formats(shape: Shape, dataset: Dataset, columns: list[Column], names: list[str]) -> dict[str, Format]:
    """Each result column's format: the measure's, an average of it (never integer), percent, month, or text."""
    measure = measure_format(shape, dataset, columns)
    declared = declared_formats(dataset)
    special: dict[str, Format] = {shape.measure: measure, "month": "month", "vs_average_pct": "percent",
                                  f"average_{shape.measure}": "number" if measure == "integer" else measure}
    return {name: special.get(name) or declared.get(name) or "text" for name in names}


def _label(name: str) -> str:
    return name.replace("_", " ")


def answer_shape(shape: Shape, dataset: Dataset, columns: list[Column], con: duckdb.DuckDBPyConnection,
                 question: str, *, chart: bool = True) -> QueryResult:
    """Run the shape's SQL and describe the result in a sentence, with its chart spec (and PNG unless `chart` is
    False)."""
    sql = shape_sql(shape, dataset, columns)
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    table = rows_as_records(names, cursor.fetchall())
    formats = shape_formats(shape, dataset, columns, names)
    measure = _measure_label(shape, dataset)
    fmt = formats[shape.measure]
    spec: ChartSpec | None = None
    if shape.kind == "top_n":
        which = "Top" if shape.descending else "Bottom"
        dim = shape.dimension or ""
        things = f"{dim}s" if len(table) != 1 else dim
        listing = ", ".join(f"{row[dim]} ({format_value(row[shape.measure], fmt)})" for row in table)
        answer = f"{which} {len(table)} {_label(things)} by {measure}: {listing}." if table else "No rows to rank."
        if table:
            spec = ChartSpec(kind="bar", title=f"{which} {len(table)} {_label(things)} by {measure}",
                             x_title=_label(dim).capitalize(), y_title=measure.capitalize(), y_format=fmt,
                             labels=[str(r[dim]) for r in table], values=[float(r[shape.measure] or 0) for r in table])
    elif shape.kind == "by_month":
        answer, spec = _by_month_answer(table, shape.measure, measure, fmt)
    else:
        answer, spec = _below_average_answer(table, shape, dataset, con, fmt)
    return QueryResult(question=question, dataset=dataset.name, method="duckdb-shape", answer=answer, sql=sql,
                       table=table, columns=names, formats=formats, chart=spec,
                       headers=_headers(shape, measure),
                       chart_png=charts.render_png(spec) if spec is not None and chart else None)


def _headers(shape: Shape, measure: str) -> dict[str, str]:
    per = f" per {_label(shape.dimension)}" if shape.dimension else ""
    return {shape.measure: measure.capitalize(), f"average_{shape.measure}": f"Mean{per}",
            "vs_average_pct": "Vs mean", "month": "Month"}


def _by_month_answer(table: list[dict[str, object]], measure_column: str, measure: str,
                     fmt: Format) -> tuple[str, ChartSpec | None]:
    if not table:
        return f"No dated rows, so no {measure} by month.", None
    months = [str(r["month"])[:7] for r in table]
    values = [float(r[measure_column] or 0) for r in table]  # type: ignore[arg-type]
    high, low = max(range(len(values)), key=values.__getitem__), min(range(len(values)), key=values.__getitem__)
    answer = (f"{measure.capitalize()} by month, {months[0]} to {months[-1]}: highest in {months[high]} "
              f"({format_value(values[high], fmt)}), lowest in {months[low]} ({format_value(values[low], fmt)})")
    if len(values) > 1 and values[0]:
        change = 100 * (values[-1] / values[0] - 1)
        answer += f"; {months[-1]} is {abs(change):.0f}% {'above' if change >= 0 else 'below'} {months[0]}"
    spec = ChartSpec(kind="line", title=f"{measure.capitalize()} by month", x_title="Month",
                     y_title=measure.capitalize(), y_format=fmt, labels=months, values=values)
    return answer + ".", spec


def _below_average_answer(table: list[dict[str, object]], shape: Shape, dataset: Dataset,
                          con: duckdb.DuckDBPyConnection, fmt: Format) -> tuple[str, ChartSpec | None]:
    dim, measure = shape.dimension or "", _measure_label(shape, dataset)
    dim_sql, measure_sql = quote_identifier(dim), quote_identifier(shape.measure)
    grouped = f"{AGGREGATE_SQL[_aggregate(shape, dataset)]}({measure_sql})"
    totals = con.execute(f"SELECT {dim_sql}, {grouped} FROM {quote_identifier(dataset.name)} "
                         f"WHERE {dim_sql} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    values = [float(total or 0) for _, total in totals]
    average = sum(values) / len(values) if values else 0.0
    average_fmt: Format = "number" if fmt == "integer" else fmt
    spec = ChartSpec(kind="bar", title=f"{measure.capitalize()} by {_label(dim)} (below average in red)",
                     x_title=_label(dim).capitalize(), y_title=measure.capitalize(), y_format=fmt,
                     labels=[str(name) for name, _ in totals], values=values, reference=average) if totals else None
    averaged = measure.startswith("average ")
    versus = f"the mean {measure.removeprefix('average ')}" if averaged else f"the average {measure}"
    mean = format_value(average, average_fmt)
    if not table:
        return f"No {_label(dim)} is below {versus} of {mean} per {_label(dim)}.", spec
    listing = ", ".join(f"{r[dim]} ({format_value(r[shape.measure], fmt)}, "
                        f"{format_value(r['vs_average_pct'], 'percent')} vs average)" for r in table)
    things = _label(dim) if len(table) == 1 else f"{_label(dim)}s"
    verb = "is" if len(table) == 1 else "are"
    return f"{len(table)} {things} {verb} below {versus} of {mean} per {_label(dim)}: {listing}.", spec
