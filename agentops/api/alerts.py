"""POST /api/v1/alerts/alertmanager: Alertmanager's webhook (version 4), with a bearer token of the receiver."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agentops.api.app import ApiUser
from agentops.service.alerts import AlertmanagerPayload, receive_alertmanager

router = APIRouter(prefix="/api/v1/alerts")


@router.post("/alertmanager", responses={201: {"description": "A run was started for the alert group."}})
def alertmanager(payload: AlertmanagerPayload, user: ApiUser) -> Any:
    """Start the group's flow when it fires (200 with the running run for a repeat); record a resolution."""
    outcome = receive_alertmanager(payload, user=user)
    return JSONResponse(asdict(outcome), status_code=201 if outcome.outcome == "started" else 200)
