"""Fixtures: a fresh project directory and database per test (SQLite, and PostgreSQL where marked).

Every test gets its own database so that no test can see another's runs, ledger or users; the
PostgreSQL server is started once per session and each test gets a new database on it.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

for _name in list(os.environ):
    if _name.startswith("AGENTOPS_") or _name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        del os.environ[_name]


def _reset_process_state() -> None:
    from agentops.core.redaction import reset_redactor
    from agentops.db import close_stores
    from agentops.engine import project, tracing
    from agentops.settings import reset_settings

    tracing.shutdown()
    close_stores()
    reset_settings()
    reset_redactor()
    project._loaded.clear()


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Streamlit's AppTest installs the page it runs as `__main__` and leaves it there; a process spawned later
    would re-import that page (and fail on its imports), so every test ends with the runner's own `__main__`."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    from tests.pg_server import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends: the engine must behave the same on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agentops.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agentops.db'}"


def make_project(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "flows").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "test-project"\n')
    monkeypatch.setenv("AGENTOPS_PROJECT_DIR", str(root))
    monkeypatch.setenv("AGENTOPS_DATABASE_URL", url)
    monkeypatch.setenv("AGENTOPS_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("AGENTOPS_MODEL_RETRY_DELAY_SECONDS", "0")
    _reset_process_state()
    return root


@pytest.fixture
def project(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project on SQLite or PostgreSQL (parametrised)."""
    yield make_project(tmp_path, db_url, monkeypatch)
    _reset_process_state()


@pytest.fixture
def sqlite_project(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project on SQLite only."""
    yield make_project(tmp_path, sqlite_url, monkeypatch)
    _reset_process_state()


@pytest.fixture
def store(project: Path):  # type: ignore[no-untyped-def]
    from agentops.db import open_store

    return open_store()


@pytest.fixture
def ops_project(sqlite_project: Path) -> Path:
    """A project with this repository's tools, prompts and policies, and its embedded backends seeded."""
    import shutil

    for folder in ("tools", "prompts", "policies"):
        shutil.copytree(ROOT / folder, sqlite_project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    from agentops.service.setup import init_project

    list(init_project())
    return sqlite_project


@pytest.fixture
def ops_db_project(project: Path) -> Path:
    """Like `ops_project` (the repository's tools, prompts, policies; backends seeded), on SQLite and PostgreSQL."""
    import shutil

    for folder in ("tools", "prompts", "policies"):
        shutil.copytree(ROOT / folder, project / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    from agentops.service.setup import init_project

    list(init_project())
    return project


@pytest.fixture
def api(project: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The HTTP API on a free loopback port, and one token per role (named `t-<role>`)."""
    from agentops.api.server import ApiServer
    from agentops.governance.users import ROLES
    from agentops.service import tokens
    from tests.pg_server import _free_port

    secrets = {role: tokens.add_token(f"t-{role}", role) for role in ROLES}
    server = ApiServer("127.0.0.1", _free_port())
    server.start()
    try:
        yield server.url, secrets
    finally:
        server.stop()
