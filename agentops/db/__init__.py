"""Every SQL statement agentops runs (SQLite and PostgreSQL), the schema and its migrations."""

from __future__ import annotations

from agentops.db.open import close_stores, open_store
from agentops.db.store import Store

__all__ = ["Store", "close_stores", "open_store"]
