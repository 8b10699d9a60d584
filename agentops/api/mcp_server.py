"""agentops as an MCP server (the official SDK's low-level `Server`): the project's flows and the read tools of
`agentops.service.mcp_serve`, over stdio (`agentops mcp serve`, acting as --as/AGENTOPS_USER) and over
Streamable HTTP at /mcp of the API server (each request acting as the account of its bearer token).

Every call is answered here with JSON text (and the same object as structured content); anything the caller
must fix is a tool error (`isError`), never a protocol failure or a crash of the server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from agentops.errors import AgentOpsError, PermissionDenied
from agentops.service import mcp_serve
from agentops.service.tokens import authenticate

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from starlette.types import Receive, Scope, Send

_http_caller: ContextVar[str | None] = ContextVar("agentops_mcp_http_caller", default=None)

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body /mcp reads (413 beyond it): a flow's parameters are small; a flood is not."""
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_name(value: str) -> str | None:
    """The host name of a Host header (`name[:port]`, `[v6][:port]`) or of an Origin (`scheme://host[:port]`);
    None when it does not parse."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value if "://" in value else f"//{value}")
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return None
    return parts.hostname or None


def trusted_host(name: str | None) -> bool:
    """A name a DNS-rebinding page cannot stand behind: a loopback name, an IP address (rebinding needs a name
    the attacker's DNS answers for), or the host of AGENTOPS_APP_URL (where this deployment is reached)."""
    import ipaddress

    from agentops.settings import get_settings

    if not name:
        return False
    if name.lower() in LOCAL_NAMES or name.lower().endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name.lower() == (_host_name(get_settings().app_url) or "").lower()


def build_server(*, transport: str, user: str | None = None) -> Server[Any]:
    """The MCP server; over HTTP the caller is the token's account of each request, over stdio `user`."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        served = await anyio.to_thread.run_sync(mcp_serve.served_tools)
        return types.ListToolsResult(tools=[
            types.Tool(name=t.name, description=t.description, input_schema=t.input_schema,
                       annotations=types.ToolAnnotations(read_only_hint=not t.starts_flow))
            for t in served])

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = _http_caller.get() if transport == "http" else user
        if transport == "http" and caller is None:  # the ASGI gate lets no request through without a token
            return _error("this request carries no token's account")
        try:
            answer = await anyio.to_thread.run_sync(
                lambda: mcp_serve.call(params.name, params.arguments, user=caller, transport=transport))
        except AgentOpsError as exc:
            return _error(str(exc))
        text = json.dumps(answer, default=str, sort_keys=True)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=json.loads(text))

    return Server("agentops", instructions="Start the project's flows as governed runs, and read runs and "
                                            "approvals. A run that waits for a person answers with the approval's "
                                            "link.", on_list_tools=list_tools, on_call_tool=call_tool)


def _error(text: str) -> Any:
    import mcp_types as types

    return types.CallToolResult(content=[types.TextContent(type="text", text=f"error: {text}")], is_error=True)


def serve_stdio(user: str | None) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    mcp_serve.check_caller(user)
    server = build_server(transport="stdio", user=user)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


class McpHttpApp:
    """The ASGI app mounted at /mcp: a bearer token of `agentops tokens` or 401, then the SDK's Streamable HTTP
    transport (stateless, JSON responses), with the token's account as the caller."""

    def __init__(self) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.manager: StreamableHTTPSessionManager = StreamableHTTPSessionManager(
            build_server(transport="http"), stateless=True, json_response=True,
            max_request_body_size=MAX_BODY_BYTES)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        refused = await anyio.to_thread.run_sync(_refusal, headers)
        if refused is not None:
            await _respond(send, *refused)
            return
        if sum(name == b"authorization" for name, _ in scope["headers"]) > 1:
            await _respond(send, 400, "send one Authorization header, not several")
            return
        header = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, secret = header.partition(" ")
        bearer = secret.strip() if scheme.lower() == "bearer" and secret.strip() else None
        client = (scope.get("client") or ("",))[0]
        try:
            caller = await anyio.to_thread.run_sync(
                lambda: authenticate(bearer, client=client, path=scope.get("path", "/mcp")))
        except PermissionDenied:
            caller = None
        if caller is None:
            await _respond(send, 401, "an Authorization: Bearer <token> header with a valid token is required",
                           [(b"www-authenticate", b"Bearer")])
            return
        token = _http_caller.set(caller)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            _http_caller.reset(token)


def _refusal(headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """DNS-rebinding protection (the MCP specification's Origin check, and the Host check it needs), before the
    token is looked at: (status, why), or None to go on."""
    host = headers.get(b"host", b"").decode("latin-1")
    if not trusted_host(_host_name(host)):
        return 421, f"this server does not answer to the host '{host[:100]}'"
    origin = headers.get(b"origin", b"").decode("latin-1")
    if origin and (origin == "null" or not trusted_host(_host_name(origin))):
        return 403, f"requests from the origin '{origin[:100]}' are refused"
    return None


async def _respond(send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})
