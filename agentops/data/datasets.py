"""Datasets: names that resolve to files under <project>/data/ (CSV, Parquet) or tables in data/*.duckdb files.

Every query goes through a DuckDB view named after the dataset, so SQL reads `FROM "sales"` whatever the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
from pydantic import BaseModel, ConfigDict

from agentops.core.yaml_files import parse_yaml
from agentops.data.result import DeclaredFormat
from agentops.errors import AgentOpsError, NotFoundError

DATA_DIR = "data"
FILE_KINDS = {".csv": "csv", ".parquet": "parquet"}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
Aggregate = Literal["sum", "avg", "min", "max", "count"]
AGGREGATE_SQL: dict[str, str] = {"sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX", "count": "COUNT"}
AGGREGATE_WORDS: dict[str, str] = {"sum": "", "avg": "average ", "min": "lowest ", "max": "highest ",
                                   "count": "number of "}
"""How an aggregate reads in an answer: 'top 3 products by average unit price'."""


class DatasetReadError(AgentOpsError):
    """A dataset file that exists but cannot be read (truncated, corrupt, not what its extension says)."""


class UnknownDatasetError(NotFoundError, ValueError):
    """The dataset name matches no file under data/ and no table in a data/*.duckdb file."""


@dataclass(frozen=True)
class Dataset:
    name: str
    """The view name queries use: the file's stem, or the table's name."""
    path: Path
    kind: Literal["csv", "parquet", "duckdb"]
    table: str | None = None
    """The table inside a .duckdb file; None for CSV and Parquet."""

    def source_sql(self) -> str:
        """The relation the dataset's view selects from (the path and table are quoted, never spliced raw)."""
        if self.kind == "csv":
            return f"read_csv_auto({sql_string(str(self.path))})"
        if self.kind == "parquet":
            return f"read_parquet({sql_string(str(self.path))})"
        return f"{quote_identifier('source_db')}.{quote_identifier(self.table or '')}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    @property
    def is_numeric(self) -> bool:
        return self.type.upper().startswith(NUMERIC_TYPES)

    @property
    def is_integer(self) -> bool:
        return self.is_numeric and "INT" in self.type.upper()

    @property
    def is_temporal(self) -> bool:
        return self.type.upper().startswith(TEMPORAL_TYPES)


class MeasuresFile(BaseModel):
    """`data/<dataset>.yaml`: how each measure aggregates when a question groups rows (sum unless declared), and
    how columns read (`formats: {revenue: money}`; undeclared ones by their type)."""

    model_config = ConfigDict(extra="forbid")
    measures: dict[str, Aggregate] = {}
    formats: dict[str, DeclaredFormat] = {}


def dataset_declarations(dataset: Dataset) -> MeasuresFile:
    """`<dataset>.yaml` beside the dataset's file, validated; empty when there is none."""
    path = dataset.path.parent / f"{dataset.name}.yaml"
    if not path.is_file():
        return MeasuresFile()
    label = f"{DATA_DIR}/{path.name}"
    return parse_yaml(path.read_text(), label, MeasuresFile,
                      not_mapping="expected a mapping with `measures:` or `formats:`")[0]


def measure_aggregates(dataset: Dataset) -> dict[str, str]:
    """The declared aggregate of each measure, from `<dataset>.yaml` beside its file; {} when there is none.

    A price or a rate must be declared `avg` (summing unit prices answers nothing); an undeclared numeric
    column is summed, which is right for amounts and counts.
    """
    return dict(dataset_declarations(dataset).measures)


def declared_formats(dataset: Dataset) -> dict[str, DeclaredFormat]:
    """The declared format of each column (`formats:` in `<dataset>.yaml`); {} when there is none."""
    return dict(dataset_declarations(dataset).formats)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def list_datasets(root: Path) -> dict[str, Dataset]:
    """Every dataset of the project, by name. A CSV and a Parquet file with one stem: the Parquet file wins."""
    folder = root / DATA_DIR
    found: dict[str, Dataset] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir(), key=lambda p: (p.suffix != ".csv", p.name)):
        kind = FILE_KINDS.get(path.suffix.lower())
        if kind and path.is_file() and _NAME.match(path.stem):
            found[path.stem.lower()] = Dataset(path.stem.lower(), path.resolve(), kind)  # type: ignore[arg-type]
    for path in sorted(folder.glob("*.duckdb")):
        for table in _duckdb_tables(path):
            if _NAME.match(table) and table.lower() not in found:
                found[table.lower()] = Dataset(table.lower(), path.resolve(), "duckdb", table)
    return found


def _duckdb_tables(path: Path) -> list[str]:
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return [row[0] for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
    except duckdb.Error:
        return []


def resolve_dataset(name: str, root: Path) -> Dataset:
    """The dataset called `name` (case-insensitive), or UnknownDatasetError naming the ones there are."""
    datasets = list_datasets(root)
    found = datasets.get(name.strip().lower())
    if found is None:
        available = ", ".join(sorted(datasets)) or f"none (add CSV or Parquet files to {root / DATA_DIR})"
        raise UnknownDatasetError(f"unknown dataset '{name}'; available: {available}")
    return found


def connect(dataset: Dataset) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the dataset as a view named after it."""
    con = duckdb.connect()
    if dataset.kind == "duckdb":
        con.execute(f"ATTACH {sql_string(str(dataset.path))} AS {quote_identifier('source_db')} (READ_ONLY)")
    con.execute(f"CREATE VIEW {quote_identifier(dataset.name)} AS SELECT * FROM {dataset.source_sql()}")
    return con


def describe(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[Column]:
    """The dataset's columns and DuckDB types, as DuckDB reads them."""
    rows = con.execute(f"DESCRIBE {quote_identifier(dataset.name)}").fetchall()
    return [Column(str(row[0]), str(row[1])) for row in rows]
