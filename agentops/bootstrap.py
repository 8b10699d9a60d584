"""`agentops init`: create or migrate the database and seed the embedded backends, idempotently."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agentops.project import project_root
from agentops.store import open_store

Seeder = Callable[[], str | None]
_seeders: list[Seeder] = []


def seeder(fn: Seeder) -> Seeder:
    """Register a function that seeds an embedded backend; it returns a line to print, or None."""
    _seeders.append(fn)
    return fn


def init_project() -> Iterator[str]:
    store = open_store()
    yield f"database ready: {store.url.split('@')[-1]} (schema {store.schema_revision()})"
    root = project_root()
    try:
        import importlib
        import sys

        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        importlib.import_module("tools.seed")
    except ModuleNotFoundError:
        pass
    for fn in _seeders:
        line = fn()
        if line:
            yield line
