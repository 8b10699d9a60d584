"""App pages are scripts, not a package, so import-linter cannot see them: this test holds them to the service door.

A page may import `agentops.service` (and its submodules), `agentops.errors` and `agentops.core.states`, plus
`ui_kit` and third-party UI libraries. It may not reach the store (`open_store`), a database driver, or write SQL.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
ALLOWED = ("agentops.service", "agentops.errors", "agentops.core.states")
DATABASE_LIBRARIES = ("sqlite3", "sqlalchemy", "sqlmodel", "psycopg", "psycopg2", "duckdb", "alembic")
SQL = re.compile(
    r"\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\b(?:CREATE|DROP|ALTER)\s+(?:TABLE|INDEX|VIEW)\b"
    r"|\bPRAGMA\s+\w+|\bSELECT\b[\s\S]+?\bFROM\b",
    re.IGNORECASE,
)
# Prose may "select ... from" in lower case; a query spells SELECT or FROM in capitals.
QUERY = re.compile(r"\bSELECT\b[\s\S]+?\bFROM\b", re.IGNORECASE)
CAPITAL_QUERY = re.compile(r"\bSELECT\b|\bFROM\b")


def _allowed(module: str) -> bool:
    return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED)


def _imported_modules(node: ast.AST) -> list[str]:
    """The modules a statement or call imports, spelled as absolute names (relative imports are app-local)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module is None:
            return []
        if node.module == "agentops":
            return [f"agentops.{alias.name}" for alias in node.names]
        return [node.module]
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            return [str(node.args[0].value)]
    return []


def _looks_like_sql(text: str) -> bool:
    for match in SQL.finditer(text):
        if not QUERY.fullmatch(match.group(0)) or CAPITAL_QUERY.search(match.group(0)):
            return True
    return False


def violations(source: str) -> list[str]:
    """Every way `source` steps past the service: a forbidden import, `open_store`, or an SQL string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for module in _imported_modules(node):
            root = module.split(".")[0]
            if (root == "agentops" and not _allowed(module)) or root in DATABASE_LIBRARIES:
                found.append(f"line {node.lineno}: imports {module}")
        if isinstance(node, ast.Name) and node.id == "open_store":
            found.append(f"line {node.lineno}: uses open_store")
        if isinstance(node, ast.Attribute) and node.attr == "open_store":
            found.append(f"line {node.lineno}: uses open_store")
        if isinstance(node, ast.alias) and node.name == "open_store":
            found.append("imports open_store")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _looks_like_sql(node.value):
            found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return found


PAGES = sorted(APP.rglob("*.py"))


def test_the_app_has_pages_to_check() -> None:
    assert len(PAGES) >= 10
    assert {p.name for p in PAGES} >= {"main.py", "runs.py", "approvals.py", "session.py"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(APP)))
def test_app_code_goes_through_the_service_only(page: Path) -> None:
    assert violations(page.read_text()) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("from agentops.db import open_store", ["line 1: imports agentops.db", "imports open_store"]),
    ("from agentops import flow", ["line 1: imports agentops.flow"]),
    ("import agentops", ["line 1: imports agentops"]),
    ("import agentops.engine.runner as r", ["line 1: imports agentops.engine.runner"]),
    ("from agentops.core import ledger", ["line 1: imports agentops.core"]),
    ("import importlib\nimportlib.import_module('agentops.db.store')", ["line 2: imports agentops.db.store"]),
    ("__import__('sqlalchemy')", ["line 1: imports sqlalchemy"]),
    ("import sqlite3", ["line 1: imports sqlite3"]),
    ("from agentops import service\nservice.x.open_store()", ["line 2: uses open_store"]),
    ("q = 'SELECT id FROM flow_runs'", ["line 1: SQL text 'SELECT id FROM flow_runs'"]),
    ("q = '''update flow_runs\n   SET state = 1'''", ["line 1: SQL text 'update flow_runs\\n   SET state = 1'"]),
    ("q = f'DELETE FROM {table}'", ["line 1: SQL text 'DELETE FROM '"]),
])
def test_the_check_catches_each_way_around_the_service(source: str, expected: list[str]) -> None:
    assert violations(source) == expected


@pytest.mark.parametrize("source", [
    "from agentops import service",
    "from agentops.service import views, schedules",
    "from agentops.errors import AgentOpsError",
    "from agentops.core.states import State",
    "from ui_kit.session import current_user",
    "st.selectbox('Select a run from the list', runs)",
    "st.caption('Pick a dataset, then select columns from it.')",
])
def test_the_check_lets_the_service_door_and_prose_through(source: str) -> None:
    assert violations(source) == []
