"""`agentops init`: create or migrate the database and seed the embedded backends, idempotently."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agentops.backends.seeders import seed_all
from agentops.db import Store, close_stores, open_store
from agentops.engine.project import project_root
from agentops.errors import ConfigError
from agentops.service.audit import audit_checkpoint
from agentops.settings import get_settings, reset_settings


def init_project() -> Iterator[str]:
    store = open_store()
    yield f"database ready: {store.url.split('@')[-1]} (schema {store.schema_revision()})"
    yield from seed_all(store, project_root())
    yield checkpoint_line(store)


def checkpoint_line(store: Store | None = None) -> str:
    """Sign the ledger's head (creating the key on first use) and say so."""
    settings = get_settings()
    cp = audit_checkpoint(store)
    key = f"key {settings.ledger_key_path} (keep it off the database host in production)"
    if cp is None:
        head = (store or open_store()).ledger_head()
        return f"ledger checkpoints: {'the head is signed already' if head and head[0] else 'no events yet'}; {key}"
    return f"ledger checkpoint: seq {cp.seq} signed, appended to {settings.checkpoint_path}; {key}"


def open_database() -> None:
    """Open (and on first use create or migrate) the project's database."""
    open_store()


def check_settings() -> None:
    """Settings a run depends on, checked before a row is written: the database URL and the model."""
    open_store()
    model = get_settings().model
    if model:
        from agentops.agents.models.setting import check_model_setting  # langchain only when a model is set

        check_model_setting(model)


@dataclass
class DemoDatabase:
    url: str
    folder: Path
    lock: IO[str]
    """Held (flock) while this demo runs, so that a second demo of the project cannot lay its database anew."""


def lay_demo_database() -> DemoDatabase:
    """A new, empty SQLite database and checkpoint folder for `agentops demo` under <project>/.agentops/demo/,
    replacing the last demo's, and this process (and its children) switched to it.

    Every demo starts from the seeded state, with rate windows and budgets as fresh as on a new install, while
    the policy stays as written. The project's own database (AGENTOPS_DATABASE_URL or .agentops/agentops.db) is
    never touched. ConfigError if another demo of this project is running.
    """
    state = get_settings().state_dir
    state.mkdir(parents=True, exist_ok=True)
    lock = (state / "demo.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise ConfigError(f"another `agentops demo` of this project is running (it holds {state / 'demo.lock'}); "
                          "stop it first") from None
    folder = state / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "checkpoints").mkdir(parents=True)
    url = f"sqlite:///{folder / 'agentops.db'}"
    os.environ["AGENTOPS_DATABASE_URL"] = url
    os.environ["AGENTOPS_CHECKPOINT_DIR"] = str(folder / "checkpoints")
    close_stores()
    reset_settings()
    return DemoDatabase(url, folder, lock)
