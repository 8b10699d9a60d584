"""POST /api/v1/hooks/{name}: a signed webhook (HMAC-SHA256 over timestamp and body) starts the hook's flow."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentops.service.hooks import MAX_BODY_BYTES, NAME_PATTERN, receive_hook

router = APIRouter(prefix="/api/v1/hooks")


@router.post("/{name}", status_code=201, responses={
    201: {"description": "The hook's flow was started: `{hook, run_id, flow}`."},
    401: {"description": "Unsigned, a bad signature, a stale timestamp, or a hook without a secret."},
    409: {"description": "A replay: this signature was received before."}})
async def hook(request: Request, name: Annotated[str, Path(pattern=NAME_PATTERN)],
               x_agentops_signature: Annotated[str | None, Header(
                   description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + body>")] = None) -> JSONResponse:
    """Authenticated by the signature, not by a bearer token: the hook's shared secret signs the body."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return JSONResponse({"error": f"the body must be at most {MAX_BODY_BYTES} bytes"}, status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"the body must be at most {MAX_BODY_BYTES} bytes"}, status_code=413)
    client = request.client.host if request.client else ""
    outcome = await run_in_threadpool(receive_hook, name, bytes(body), x_agentops_signature, client=client)
    return JSONResponse(asdict(outcome), status_code=201)
