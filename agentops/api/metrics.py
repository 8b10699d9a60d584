"""GET /metrics: agentops' own metrics for Prometheus (a bearer token of any role, as every route)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from agentops.api.app import ApiUser
from agentops.service.metrics import metrics_exposition

router = APIRouter()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(_user: ApiUser) -> Response:
    """Runs, steps, approvals, verdicts, tool and model calls, queue, scheduler and workers, read at scrape time."""
    body, content_type = metrics_exposition()
    return Response(body, media_type=content_type)
