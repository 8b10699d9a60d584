"""The FastAPI application: token authentication, errors as JSON with their status, and the routers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Route

from agentops.errors import (
    AgentOpsError,
    ApprovalError,
    HookRefused,
    InvalidStateError,
    NotFoundError,
    ParameterError,
    PermissionDenied,
    TokenRefused,
    UnknownFlowError,
)
from agentops.service.tokens import authenticate

_bearer = HTTPBearer(auto_error=False, description="An API token from `agentops tokens add NAME --role ROLE`.")

_STATUS: list[tuple[type[AgentOpsError], int]] = [
    (PermissionDenied, 403), (NotFoundError, 404), (UnknownFlowError, 404), (ParameterError, 422),
    (InvalidStateError, 409), (ApprovalError, 409), (AgentOpsError, 400),
]


class Unauthenticated(Exception):
    """No token, or one that is unknown, revoked or expired: 401, whatever the route."""


def api_user(request: Request,
             credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The account the request acts as: the one its bearer token names. A refusal is recorded (never the token)."""
    bearer = credentials is not None and credentials.scheme.lower() == "bearer"
    client = request.client.host if request.client else ""
    try:
        return authenticate(credentials.credentials if credentials is not None and bearer else None,
                            client=client, path=request.url.path)
    except TokenRefused as exc:
        message = "an Authorization: Bearer <token> header is required" if exc.reason == "missing" else str(exc)
        raise Unauthenticated(message) from None


ApiUser = Annotated[str, Depends(api_user)]


def create_app() -> FastAPI:
    from agentops.api import alerts, hooks, metrics, routes
    from agentops.api.mcp_server import McpHttpApp

    mcp_http = McpHttpApp()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with mcp_http.running():
            yield

    app = FastAPI(title="agentops", version="1", summary="Runs, steps and approvals of an agentops project.",
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None, lifespan=lifespan)
    app.mount("/mcp", mcp_http)
    app.router.routes.append(Route("/mcp", mcp_http, methods=["GET", "POST", "DELETE"]))  # the same, no slash

    @app.exception_handler(Unauthenticated)
    def _unauthenticated(_request: Request, exc: Unauthenticated) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(HookRefused)
    def _hook_refused(_request: Request, exc: HookRefused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(AgentOpsError)
    def _refused(_request: Request, exc: AgentOpsError) -> JSONResponse:
        status = next(code for kind, code in _STATUS if isinstance(exc, kind))
        return JSONResponse({"error": str(exc)}, status_code=status)

    app.include_router(routes.router)
    app.include_router(alerts.router)
    app.include_router(hooks.router)
    app.include_router(metrics.router)
    return app
