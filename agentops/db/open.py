"""One Store per database URL in a process, opened (and migrated) on first use.

A URL that cannot work (an unknown scheme, a missing driver, an unreachable server, a file that is not SQLite,
a SQLite file in a directory that does not exist) is a ConfigError naming it, before anything is written.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from agentops.db.migrate import ensure_schema
from agentops.db.sql import sqlite_path
from agentops.db.store import Store
from agentops.errors import ConfigError
from agentops.settings import get_settings

DRIVERS = {"sqlite": None, "sqlite+pysqlite": None, "postgresql+psycopg": "psycopg",
           "postgresql+psycopg2": "psycopg2"}
"""The URL schemes agentops runs on, with the module each driver needs."""
ALIASES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
SQLITE_MAGIC = b"SQLite format 3\x00"

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()
_open_hooks: list[Callable[[Store], None]] = []


def on_open(hook: Callable[[Store], None]) -> None:
    """Call `hook` on every Store this process opens, the ones open already included (dispatch attaches its
    after-commit listener this way)."""
    with _stores_lock:
        _open_hooks.append(hook)
        opened = list(_stores.values())
    for store in opened:
        hook(store)


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """The process's Store for `url` (default: from settings), migrated to the latest schema."""
    settings = get_settings()
    explicit = url or settings.database_url
    url = normalise_url(explicit or settings.url)
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            check_url(url, create_dir=explicit is None)
            if settings.broker_url and url.startswith("sqlite"):
                raise ConfigError("AGENTOPS_BROKER_URL needs PostgreSQL (AGENTOPS_DATABASE_URL=postgresql://...): "
                                  "workers on other hosts cannot share a SQLite file; unset it to use polling "
                                  "workers")
            store = Store(url)
            if migrate:
                try:
                    ensure_schema(store)
                except Exception as exc:
                    store.dispose()
                    raise ConfigError(f"cannot open the database {display_url(url)}: {_first_line(exc)}") from None
            _stores[url] = store
            for hook in _open_hooks:
                hook(store)
    return store


def close_stores() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()


def forget_stores_after_fork() -> None:
    """In a forked child: drop the parent's stores without closing their connections, which the parent still
    uses (closing a shared socket would end the parent's session); the child opens its own."""
    with _stores_lock:
        for store in _stores.values():
            store.forget_connections()
        _stores.clear()


def normalise_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{ALIASES.get(scheme, scheme)}{sep}{rest}" if sep else url


def check_url(url: str, *, create_dir: bool) -> None:
    """Refuse a URL agentops cannot open; create the default SQLite directory (`create_dir`) on first use."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in DRIVERS:
        known = ", ".join(s for s in DRIVERS if "+" in s or s == "sqlite")
        raise ConfigError(f"database URL {display_url(url)}: unknown scheme '{scheme}' (use one of {known})")
    driver = DRIVERS[scheme]
    if driver and importlib.util.find_spec(driver) is None:
        raise ConfigError(f"database URL {display_url(url)}: the driver '{driver}' is not installed")
    if not scheme.startswith("sqlite"):
        return
    path = sqlite_path(url)
    if path in ("", ":memory:"):
        return
    file = Path(path)
    if not file.parent.is_dir():
        if not create_dir:
            raise ConfigError(f"database URL {display_url(url)}: the directory {file.parent} does not exist")
        file.parent.mkdir(parents=True, exist_ok=True)
    if file.is_dir():
        raise ConfigError(f"database URL {display_url(url)}: {file} is a directory, not a SQLite file")
    if file.is_file() and file.stat().st_size > 0:
        with file.open("rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise ConfigError(f"database URL {display_url(url)}: {file} is not a SQLite database")


def display_url(url: str) -> str:
    """The URL with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]
