"""`agentops init`: create or migrate the database and seed the embedded backends, idempotently."""

from __future__ import annotations

from collections.abc import Iterator

from agentops.backends.seeders import seed_all
from agentops.db import open_store
from agentops.engine.project import project_root


def init_project() -> Iterator[str]:
    store = open_store()
    yield f"database ready: {store.url.split('@')[-1]} (schema {store.schema_revision()})"
    yield from seed_all(store, project_root())


def open_database() -> None:
    """Open (and on first use create or migrate) the project's database."""
    open_store()
