"""create_ticket, update_ticket, list_tickets, get_ticket: the embedded ticket table, or a REST ticket API."""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.db import open_store
from agentops.engine.toolkit import check_fence, current_run_id, idempotency_key
from agentops.settings import get_settings

Priority = Literal["P1", "P2", "P3", "P4"]


class CreateTicketArgs(BaseModel):
    title: str = Field(min_length=3, max_length=200)
    description: str = ""
    priority: Priority = "P3"


class UpdateTicketArgs(BaseModel):
    ticket_id: int
    status: Literal["open", "in_progress", "resolved", "closed"] | None = None
    comment: str | None = None
    priority: Priority | None = None


class ListTicketsArgs(BaseModel):
    status: str | None = None


class GetTicketArgs(BaseModel):
    ticket_id: int


def _api() -> httpx.Client | None:
    settings = get_settings()
    if not settings.ticket_api_url:
        return None
    headers = {}
    if settings.ticket_api_token:
        headers["Authorization"] = f"Bearer {settings.ticket_api_token.get_secret_value()}"
    return httpx.Client(base_url=settings.ticket_api_url.rstrip("/"), headers=headers, timeout=30)


def create_ticket(title: str, description: str = "", priority: str = "P3") -> dict[str, Any]:
    """Open a ticket once per tool step: the API gets an Idempotency-Key header, the table a unique key."""
    key = idempotency_key()
    check_fence()
    client = _api()
    if client is not None:
        with client:
            response = client.post("/tickets", json={"title": title, "description": description,
                                                      "priority": priority}, headers={"Idempotency-Key": key})
            response.raise_for_status()
            return {"ticket": response.json(), "created": response.status_code == 201}
    now = time.time()
    row, created = open_store().ticket_create({
        "idempotency_key": key, "title": title, "description": description, "priority": priority, "status": "open",
        "run_id": current_run_id(), "created_at": now, "updated_at": now})
    return {"ticket": {k: row[k] for k in ("id", "title", "priority", "status")}, "created": created}


def update_ticket(ticket_id: int, status: str | None = None, comment: str | None = None,
                  priority: str | None = None) -> dict[str, Any]:
    """Change a ticket's status or priority, or add a comment (updates are idempotent by nature)."""
    changes = {k: v for k, v in {"status": status, "priority": priority}.items() if v is not None}
    check_fence()
    client = _api()
    if client is not None:
        with client:
            response = client.patch(f"/tickets/{ticket_id}", json={**changes, "comment": comment})
            response.raise_for_status()
            return {"ticket": response.json()}
    store = open_store()
    if comment:
        current = next((t for t in store.tickets_list(limit=100_000) if t.id == ticket_id), None)
        if current is not None:
            changes["description"] = f"{current.description}\n\n{comment}".strip()
    row = store.ticket_update(ticket_id, {**changes, "updated_at": time.time()})
    if row is None:
        raise ValueError(f"no ticket with id {ticket_id}")
    return {"ticket": {k: row[k] for k in ("id", "title", "priority", "status")}}


def list_tickets(status: str | None = None) -> dict[str, Any]:
    """Tickets, newest first, optionally filtered by status."""
    client = _api()
    if client is not None:
        with client:
            response = client.get("/tickets", params={"status": status} if status else None)
            response.raise_for_status()
            return {"tickets": response.json()}
    rows = open_store().tickets_list(status=status, limit=50)
    return {"tickets": [{"id": t.id, "title": t.title, "priority": t.priority, "status": t.status} for t in rows]}


def get_ticket(ticket_id: int) -> dict[str, Any]:
    """One ticket with its description (what an agent reads is data, and the approval cards say so)."""
    client = _api()
    if client is not None:
        with client:
            response = client.get(f"/tickets/{int(ticket_id)}")
            response.raise_for_status()
            return {"ticket": response.json()}
    found = open_store().ticket(ticket_id)
    if found is None:
        raise ValueError(f"no ticket #{ticket_id}")
    return {"ticket": {"id": found.id, "title": found.title, "description": found.description,
                       "priority": found.priority, "status": found.status}}


TOOLS = [
    StructuredTool.from_function(func=create_ticket, name="create_ticket", args_schema=CreateTicketArgs,
                                 metadata={"side_effect": True},
                                 description="Open an incident ticket with a title, description and priority "
                                             "(P1 most urgent, pages people; P4 least)."),
    StructuredTool.from_function(func=update_ticket, name="update_ticket", args_schema=UpdateTicketArgs,
                                 metadata={"side_effect": True},
                                 description="Update a ticket's status or priority, or add a comment."),
    StructuredTool.from_function(func=list_tickets, name="list_tickets", args_schema=ListTicketsArgs,
                                 description="List tickets, optionally by status (open, in_progress, resolved)."),
    StructuredTool.from_function(func=get_ticket, name="get_ticket", args_schema=GetTicketArgs,
                                 description="Read one ticket: title, description, priority and status."),
]
