"""SQL helpers shared by every owner's statements: SQL text on SQLite and PostgreSQL, row builders."""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from agentops.core.deferred import DeferredModule
from agentops.db.records import LogRecord, RunRecord, StepRecord, column_defaults, column_names

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy import Connection

    from agentops.db import schema
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")


def as_row(row_type: type, mapping: Any) -> Any:
    return row_type(**dict(mapping))


def insert_sql(table: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


def insert_where_sql(table: str, columns: Iterable[str], condition: str) -> str:
    """An INSERT of one row that inserts nothing unless `condition` (SQL text) holds, in the same statement."""
    columns = list(columns)
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(':' + c for c in columns)} "
            f"WHERE {condition}")


def update_sql(table: str, columns: Iterable[str], where: str, *, also: Iterable[str] = ()) -> str:
    """An UPDATE setting each column from its parameter, plus the assignments in `also` (`epoch = epoch + 1`)."""
    return f"UPDATE {table} SET {', '.join([*(f'{c} = :{c}' for c in columns), *also])} WHERE {where}"


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, ...)` and its parameters, for an IN over a list in SQL text."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(":" + k for k in params) + ")", params


RUN_COLUMNS = ", ".join(column_names(RunRecord))
STEP_COLUMNS = ", ".join(column_names(StepRecord))
LOG_COLUMNS = ", ".join(column_names(LogRecord))


def with_defaults(record: type, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the table's defaults filled in, so one INSERT text fits every row (and no column is unknown)."""
    unknown = row.keys() - column_names(record)
    if unknown:
        raise ValueError(f"not columns of {record.__name__}: {', '.join(sorted(unknown))}")
    return {**column_defaults(record), **row}


class SqlText:
    """Runs the engine's SQL text on a plain sqlite3 connection or inside a SQLAlchemy transaction.

    Both take `:name` parameters, so one statement serves SQLite and PostgreSQL.
    """

    def __init__(self, conn: sqlite3.Connection | Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        if isinstance(self.conn, sqlite3.Connection):
            return self.conn.execute(sql, params or {}).rowcount
        return self.conn.execute(sa.text(sql), params or {}).rowcount

    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if isinstance(self.conn, sqlite3.Connection):
            self.conn.executemany(sql, rows)
        else:
            self.conn.execute(sa.text(sql), list(rows))

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if isinstance(self.conn, sqlite3.Connection):
            cursor = self.conn.execute(sql, params or {})
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        return [dict(m) for m in self.conn.execute(sa.text(sql), params or {}).mappings()]

    def tuples(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if isinstance(self.conn, sqlite3.Connection):
            return self.conn.execute(sql, params or {}).fetchall()
        return [tuple(row) for row in self.conn.execute(sa.text(sql), params or {})]

    def first(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None


_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """SQL text with `:name` parameters in psycopg's `%(name)s` style (a literal `%` doubled), as SQLAlchemy's
    text() reads them."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


class PsycopgText(SqlText):
    """The engine's SQL text on a plain psycopg connection (PostgreSQL; see db/base.py: PgConnections)."""

    def __init__(self, conn: Any) -> None:
        self.psycopg = conn

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        return int(self.psycopg.execute(pyformat(sql), params or {}).rowcount)

    def execute_many(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.psycopg.cursor().executemany(pyformat(sql), list(rows))

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        cursor = self.psycopg.cursor(row_factory=dict_row)
        return list(cursor.execute(pyformat(sql), params or {}).fetchall())

    def tuples(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.psycopg.execute(pyformat(sql), params or {}).fetchall())


def sqlite_path(url: str) -> str:
    """The file a sqlite:/// URL names, read as SQLAlchemy reads it (query options dropped, %XX decoded)."""
    return unquote(url.split("///", 1)[-1].split("?", 1)[0])


def connect_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
