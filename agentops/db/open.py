"""One Store per database URL in a process, opened (and migrated) on first use."""

from __future__ import annotations

import threading

from agentops.db.migrate import ensure_schema
from agentops.db.store import Store
from agentops.settings import get_settings

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """The process's Store for `url` (default: from settings), migrated to the latest schema."""
    url = url or get_settings().url
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = Store(url)
            if migrate:
                ensure_schema(store)
            _stores[url] = store
    return store


def close_stores() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()
