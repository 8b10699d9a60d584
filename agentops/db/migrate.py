"""Create or upgrade the schema with Alembic. Alembic is imported only when an upgrade is needed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

    from agentops.db.store import Store

HEAD_REVISION = "0017_claim_index"
"""The newest migration in agentops/migrations/versions; bump with every new migration."""
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(store: Store) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    return config


def ensure_schema(store: Store) -> None:
    if store.schema_revision() == HEAD_REVISION:
        return
    from alembic import command

    config = alembic_config(store)
    with store.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
