"""The chat's statements: conversation messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

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


class ConversationRow(NamedTuple):
    conversation_id: str
    owner: str | None
    first_message: str
    started_at: float
    last_at: float
    messages: int


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

    def conversations(self, *, owner: str | None = None, limit: int = 100) -> list[ConversationRow]:
        """Conversations, the latest first: who began each (the author of its first message), that first message,
        when it last moved and how many messages it holds. `owner` keeps one person's."""
    
        chat = schema.CHAT
        summary = (sa.select(chat.c.conversation_id, sa.func.min(chat.c.id).label("first_id"),
                             sa.func.max(chat.c.ts).label("last_ts"), sa.func.count().label("messages"))
                   .group_by(chat.c.conversation_id).subquery())
        query = (sa.select(summary.c.conversation_id, chat.c.user, chat.c.content, chat.c.ts, summary.c.last_ts,
                           summary.c.messages)
                 .join(chat, chat.c.id == summary.c.first_id)
                 .order_by(summary.c.last_ts.desc(), summary.c.conversation_id).limit(limit))
        if owner is not None:
            query = query.where(chat.c.user == owner)
        with self.read() as conn:
            return [ConversationRow(r.conversation_id, r.user, r.content, r.ts, r.last_ts, r.messages)
                    for r in conn.execute(query)]

    def conversation_owner(self, conversation_id: str) -> tuple[bool, str | None]:
        """(exists, the author of its first message)."""
        chat = schema.CHAT
        with self.read() as conn:
            found = conn.execute(sa.select(chat.c.user).where(chat.c.conversation_id == conversation_id)
                                 .order_by(chat.c.id).limit(1)).first()
        return (found is not None, found.user if found else None)
