"""`agentops init`: create or migrate the database and seed the embedded backends, idempotently."""

from __future__ import annotations

from collections.abc import Iterator

from agentops.backends.seeders import seed_all
from agentops.db import Store, open_store
from agentops.engine.project import project_root
from agentops.service.audit import audit_checkpoint
from agentops.settings import get_settings


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
