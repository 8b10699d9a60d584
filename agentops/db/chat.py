"""The chat's statements: conversation messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentops.core.deferred import DeferredModule
from agentops.core.ledger import Event

if TYPE_CHECKING:
    import sqlalchemy as sa

    from agentops.db import schema
    from agentops.db.schema import (
        ChatMessage,
    )
else:
    sa = DeferredModule("sqlalchemy")
    schema = DeferredModule("agentops.db.schema")
from agentops.db.ledger import LedgerSQL
from agentops.db.sql import as_row


class ChatSQL(LedgerSQL):
    def add_chat_message(self, values: dict[str, Any], events: Sequence[Event] = ()) -> None:
        with self.write() as conn:
            conn.execute(sa.insert(schema.CHAT), values)
            self._append(conn, events)

    def chat_messages(self, conversation_id: str) -> list[ChatMessage]:
        with self.read() as conn:
            chat = schema.CHAT
            rows = conn.execute(sa.select(chat).where(chat.c.conversation_id == conversation_id).order_by(chat.c.id))
            return [as_row(schema.ChatMessage, r._mapping) for r in rows]
