"""MCP servers a project declares in `mcp.yaml` (next to `policies/`), their tools' definitions, and calls to them.

A server is a stdio command (its environment is exactly `env` plus the variables named in `env_from`, over the SDK's
short list of safe defaults such as PATH and HOME; never the whole environment) or a Streamable HTTP URL (with a
bearer token read from the setting named in `token_env`). `tools:` is the server's allowlist; an agent that names a
server gets exactly those tools, and one that names `server.tool` gets that tool.

Each tool becomes a LangChain tool (`McpTool`) whose name for the model is `server__tool` (model APIs refuse dots)
and whose name for everything else (whitelist, policy, approvals, the ledger) is `server.tool`. Its arguments carry
`DEFINITION_KEY`, the digest of the definition the call was screened (and approved) on; a call lists the server's
tools again in the session it calls in and runs only when the live definition still has that digest and is the one
pinned. Each call passes the step's idempotency key in the request's `_meta`.

A server that needs input during a call (elicitation) answers, on the 2026-07-28 protocol, with an
`InputRequiredResult`: its requests and an opaque `request_state` it sealed. `call_tool` raises `McpInputRequired`
with both, so that the caller can record them, ask a person without holding a process, and call again with the
answers (`resume`); the server continues from its state. A server that instead asks in the middle of a live call
(the 2025 era's `elicitation/create`) cannot wait for a person: the request is cancelled and the call is an error.
"""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentops.core import serialization
from agentops.core.coroutines import run_coroutine
from agentops.core.redaction import Redactor
from agentops.core.yaml_files import parse_yaml
from agentops.engine.mcp_sessions import NotSent
from agentops.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from langchain_core.tools import BaseTool
    from mcp import Client
    from mcp_types import RequestParamsMeta

MCP_FILE = "mcp.yaml"
DEFINITION_KEY = "_mcp_definition"
"""The argument that binds a call to the digest of the tool definition it was screened and approved on."""
META_IDEMPOTENCY_KEY = "agentops/idempotency_key"
META_RUN_ID = "agentops/run_id"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def _refuse_credentials(url: str) -> None:
    """A URL carrying a password or a secret-looking query parameter would put that secret in errors, logs and the
    project's files; the bearer token belongs in `token_env`."""
    from urllib.parse import parse_qsl, urlsplit

    from agentops.core.redaction import is_secret_key

    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError("the url holds credentials (user@ or user:password@); give the server's bearer token "
                         "in the setting named by 'token_env' instead")
    named = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True) if is_secret_key(key)]
    if named:
        raise ValueError(f"the url's query holds '{named[0]}', which looks like a secret; give the server's "
                         f"bearer token in the setting named by 'token_env' instead")


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    env_from: list[str] = Field(default_factory=list)
    """Variables of agentops' own environment passed on by name (and only these)."""
    cwd: str | None = None
    url: str | None = None
    token_env: str | None = None
    """The setting (environment variable) holding the bearer token of an HTTP server."""
    tools: list[str] | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    """How long one request to the server (its listing, a call) may go unanswered before it is a tool error."""

    @field_validator("env_from")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"'{name}' is not an environment variable name")
        return value

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _refuse_credentials(value)
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"'{value[:200]}' is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (a stdio server) or 'url' (a Streamable HTTP server)")
        if self.url is not None and (self.args or self.env or self.env_from or self.cwd):
            raise ValueError("args, env, env_from and cwd are for stdio servers ('command'), not 'url'")
        if self.command is not None and self.token_env is not None:
            raise ValueError("token_env is for HTTP servers ('url'), not 'command'")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"


class McpFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: dict[str, McpServerConfig] = Field(default_factory=dict)

    @field_validator("servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerConfig]) -> dict[str, McpServerConfig]:
        for name in value:
            if not _NAME.match(name) or "__" in name:
                raise ValueError(f"server name '{name}' must be lowercase letters, digits, '-' or '_' "
                                 "(no '__'), starting with a letter")
        return value


_configs: dict[Path, tuple[float, dict[str, McpServerConfig]]] = {}


def mcp_servers(root: Path) -> dict[str, McpServerConfig]:
    """The servers `<root>/mcp.yaml` declares (none without the file), reloaded when the file changes."""
    path = root.resolve() / MCP_FILE
    if not path.is_file():
        return {}
    stamp = path.stat().st_mtime
    cached = _configs.get(path)
    if cached is None or cached[0] != stamp:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{MCP_FILE}: cannot read it: {exc}") from None
        data, _ = parse_yaml(text, MCP_FILE, McpFile, not_mapping="mcp.yaml must be a mapping with 'servers:'")
        cached = (stamp, {name: _rooted(config, path.parent) for name, config in data.servers.items()})
        _configs[path] = cached
    return cached[1]


def _rooted(config: McpServerConfig, root: Path) -> McpServerConfig:
    """A stdio server runs in the project root (or its `cwd`, relative to the root), wherever agentops started."""
    if config.command is None:
        return config
    return config.model_copy(update={"cwd": str(root / config.cwd) if config.cwd else str(root)})


@dataclass(frozen=True)
class ToolDefinition:
    """What a server says one of its tools is: the part a pin covers."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    output_schema: dict[str, Any] | None = None

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """What the digest covers: the title and output schema only when the server gives them (so a definition
        without them keeps the digest it was pinned with before they were covered)."""
        out = {"name": self.name, "description": self.description, "input_schema": self.input_schema,
               "annotations": self.annotations}
        if self.title is not None:
            out["title"] = self.title
        if self.output_schema is not None:
            out["output_schema"] = self.output_schema
        return out

    @property
    def digest(self) -> str:
        return serialization.digest(self.as_dict())

    def hint(self, name: str) -> bool:
        return self.annotations.get(name) is True


def split_name(qualified: str) -> tuple[str, str]:
    server, _, tool = qualified.partition(".")
    return server, tool


def config_secrets(config: McpServerConfig) -> list[str]:
    """Values agentops gives the server that must never be stored: its bearer token, and the `env` and `env_from`
    values under secret-looking names (a server may echo them in a result or an error)."""
    from agentops.core.redaction import is_secret_key

    markers = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL", "AUTH")
    secret = [v for k, v in _environment(config).items() if is_secret_key(k) or any(m in k.upper() for m in markers)]
    token = os.environ.get(config.token_env) if config.token_env else None
    return [v for v in [*secret, token] if v]


def _environment(config: McpServerConfig) -> dict[str, str]:
    passed = {name: os.environ[name] for name in config.env_from if name in os.environ}
    return {**passed, **config.env}


@asynccontextmanager
async def _connect(name: str, config: McpServerConfig, asked: list[str] | None = None) -> AsyncIterator[Client]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    async def mid_call_elicitation(_context: Any, params: Any) -> Any:
        """A 2025-era request for input inside a live call: nobody can answer it while the call waits."""
        from mcp_types import ElicitResult

        if asked is not None:
            asked.append(_cut(str(getattr(params, "message", "")), MAX_MESSAGE_CHARS) if len(asked) < MAX_ASKED
                         else "")
        return ElicitResult(action="cancel")

    if config.command is not None:
        params = StdioServerParameters(command=config.command, args=config.args, env=_environment(config),
                                       cwd=config.cwd)
        async with Client(params, read_timeout_seconds=config.timeout_seconds,
                          elicitation_callback=cast("Any", mid_call_elicitation)) as client:
            yield client
        return
    headers: dict[str, str] = {}
    if config.token_env is not None:
        token = os.environ.get(config.token_env)
        if not token:
            raise ConfigError(f"{MCP_FILE}: server '{name}': the setting {config.token_env} (its token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    assert config.url is not None
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(config.url, http_client=http)
        async with Client(transport, read_timeout_seconds=config.timeout_seconds,
                          elicitation_callback=cast("Any", mid_call_elicitation)) as client:
            yield client


MAX_LIST_PAGES = 100
"""How many pages of `tools/list` a server may answer with; more (or a cursor given twice) is refused."""


async def _definitions(name: str, client: Client) -> list[ToolDefinition]:
    """Every page of the server's listing (the definition check always asks the server). A listing that names a
    tool twice is refused: which of the two the server would run cannot be known, so neither is pinned or called."""
    out: dict[str, ToolDefinition] = {}
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_LIST_PAGES):
        listed = await client.list_tools(cursor=cursor, cache_mode="bypass")
        for tool in listed.tools:
            if tool.name in out:
                raise McpCallRefused(f"MCP server '{name}' lists the tool '{tool.name}' more than once; an "
                                     "ambiguous listing is refused")
            annotations = tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True) \
                if tool.annotations is not None else {}
            out[tool.name] = ToolDefinition(name, tool.name, tool.description or "", dict(tool.input_schema),
                                            annotations, tool.title, _schema_or_none(tool.output_schema))
        cursor = listed.next_cursor
        if cursor is None:
            return list(out.values())
        if cursor in seen:
            break
        seen.add(cursor)
    raise McpCallRefused(f"MCP server '{name}' did not finish its tool listing within {MAX_LIST_PAGES} pages "
                         "(or gave a page's cursor twice)")


def _schema_or_none(schema: Any) -> dict[str, Any] | None:
    return dict(schema) if schema is not None else None


T = TypeVar("T")

MAX_ASKED = 5
"""Mid-call requests for input quoted in the call's error (each cancelled; the rest are counted)."""
MAX_MESSAGE_CHARS = 500
MAX_RESULT_CHARS = 100_000
"""A result's text (all its text blocks) kept for the step, the ledger and the model; the rest is cut."""
MAX_STRUCTURED_CHARS = 100_000
MAX_QUESTIONS = 10
"""Questions one InputRequiredResult may ask (each is an approval in the inbox)."""
MAX_SCHEMA_CHARS = 8_000
_PRIMITIVE = {"string", "number", "integer", "boolean"}
_PROPERTY_KEYS = {"type", "title", "description", "enum", "enumNames", "default", "format", "minimum", "maximum",
                  "minLength", "maxLength"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit} more characters cut by agentops]"


def _asked_text(asked: list[str]) -> str:
    quoted = "; ".join(a for a in asked[:MAX_ASKED])
    more = len(asked) - MAX_ASKED
    return quoted + (f" (and {more} more requests)" if more > 0 else "")


def _in_session(server: str, config: McpServerConfig, work: Callable[[Client, list[str]], Awaitable[T]]) -> T:
    """`work(client, asked)` in a fresh session, or in the process's kept one (AGENTOPS_MCP_KEEP_SESSIONS); `asked`
    collects the server's mid-call requests for input."""
    from agentops.settings import get_settings

    if get_settings().mcp_keep_sessions:
        from agentops.engine.mcp_sessions import pool

        key = f"{server}:{serialization.digest(config.model_dump(mode='json'))}"
        return pool().use(key, lambda asked: _connect(server, config, asked), work,
                          (McpCallRefused, McpInputRequired, McpToolError, ConfigError))

    async def fresh() -> T:
        asked: list[str] = []
        failed: Exception | None = None
        async with _connect(server, config, asked) as client:
            try:
                result = await work(client, asked)
            except Exception as exc:  # raised once the session is closed, not wrapped in the SDK's task group
                failed = exc
        if failed is not None:
            raise failed
        return result

    try:
        return run_coroutine(fresh())
    except NotSent as failed:
        raise failed.error from None


async def _listed(server: str, client: Client) -> list[ToolDefinition]:
    """The server's definitions, as the first thing a session's work does: a failure here sent nothing."""
    try:
        return await _definitions(server, client)
    except Exception as exc:
        raise NotSent(exc) from None


def list_definitions(root: Path, server: str) -> list[ToolDefinition]:
    """Every tool the server offers now, allowlisted or not; ConfigError when it cannot answer."""
    config = _server(root, server)

    async def listing(client: Client, _asked: list[str]) -> list[ToolDefinition]:
        return await _listed(server, client)

    try:
        return _in_session(server, config, listing)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{MCP_FILE}: server '{server}' did not list its tools: {_describe(exc)}") from None


def _server(root: Path, server: str) -> McpServerConfig:
    servers = mcp_servers(root)
    if server not in servers:
        raise ConfigError(f"no MCP server '{server}' in {MCP_FILE} (declared: {', '.join(sorted(servers)) or 'none'})")
    return servers[server]


def allowed_definitions(root: Path, server: str) -> dict[str, ToolDefinition]:
    """The server's tools that its allowlist lets agents name (all of them without `tools:`), by tool name."""
    config = _server(root, server)
    offered = {d.name: d for d in list_definitions(root, server)}
    if config.tools is None:
        return offered
    missing = [t for t in config.tools if t not in offered]
    if missing:
        raise ConfigError(f"{MCP_FILE}: server '{server}' allowlists tools it does not offer: {', '.join(missing)} "
                          f"(it offers: {', '.join(sorted(offered)) or 'none'})")
    return {t: offered[t] for t in config.tools}


def is_mcp_entry(root: Path, entry: str) -> bool:
    """Whether an agent's tool entry names an MCP server (`server`) or one of its tools (`server.tool`)."""
    return split_name(entry)[0] in mcp_servers(root)


def mcp_tools(root: Path, entries: list[str]) -> dict[str, dict[str, BaseTool]]:
    """For each entry of an agent's tool list that names an MCP server or server tool, the tools it stands for,
    by qualified name. A bare server name stands for its allowlist and needs one (`tools:` in mcp.yaml)."""
    servers = mcp_servers(root)
    wanted = [e for e in entries if split_name(e)[0] in servers]
    listed: dict[str, dict[str, ToolDefinition]] = {}
    out: dict[str, dict[str, BaseTool]] = {}
    for entry in wanted:
        server, tool = split_name(entry)
        if server not in listed:
            listed[server] = allowed_definitions(root, server)
        allowed = listed[server]
        if not tool:
            if servers[server].tools is None:
                raise ConfigError(f"an agent names the whole MCP server '{server}', which has no allowlist: give it "
                                  f"'tools:' in {MCP_FILE}, or name its tools as '{server}.TOOL'")
            out[entry] = {d.qualified: McpTool.of(root, d) for d in allowed.values()}
        elif tool in allowed:
            out[entry] = {entry: McpTool.of(root, allowed[tool])}
        else:
            raise ConfigError(f"MCP server '{server}' has no tool '{tool}' that agents may use "
                              f"(allowed: {', '.join(sorted(allowed)) or 'none'})")
    return out


def tool_schemas(root: Path, servers: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The input schema of every allowlisted tool of the servers (default: every declared one), by qualified name."""
    chosen = list(mcp_servers(root)) if servers is None else servers
    return {d.qualified: d.input_schema for server in chosen for d in allowed_definitions(root, server).values()}


class McpCallRefused(Exception):
    """The server's live definition is not the one the call was screened and approved on, or not the pinned one."""


class McpToolError(RuntimeError):
    """The server answered the call with an error, or asked for input in a way nobody can answer."""


class McpInputRequired(Exception):
    """The server needs answers before it completes the call: `requests` (key -> {message, requested_schema}) and
    the opaque `request_state` to send back with them."""

    def __init__(self, qualified: str, requests: dict[str, dict[str, Any]], request_state: str | None) -> None:
        asked = "; ".join(r["message"] for r in requests.values())
        super().__init__(f"{qualified} asks for input: {asked}")
        self.requests = requests
        self.request_state = request_state


@dataclass(frozen=True)
class Resume:
    """The answers to a server's requests for input, sent with the call made again."""

    input_responses: dict[str, dict[str, Any]]
    """key -> {"action": "accept", "content": {...}} | {"action": "decline"} | {"action": "cancel"}"""
    request_state: str | None


resuming: ContextVar[Resume | None] = ContextVar("agentops_mcp_resuming", default=None)
"""Set around a tool's invocation when the call answers a server's earlier requests for input."""


def _input_requests(qualified: str, result: Any) -> dict[str, dict[str, Any]]:
    """The form elicitations of an InputRequiredResult; any other request is one agentops does not answer."""
    out = {}
    requests = result.input_requests or {}
    if len(requests) > MAX_QUESTIONS:
        raise McpToolError(f"{qualified} asks {len(requests)} questions at once (at most {MAX_QUESTIONS}); the call "
                           "was not completed")
    for key, request in requests.items():
        params: Any = getattr(request, "params", None)
        if getattr(request, "method", None) != "elicitation/create" or getattr(params, "mode", "form") != "form":
            raise McpToolError(f"{qualified} asks for '{getattr(request, 'method', '?')}' "
                               f"({getattr(params, 'mode', '')}), which agentops does not answer; the call was not "
                               "completed")
        message = str(params.message)
        if len(message) > MAX_MESSAGE_CHARS * 4:
            raise McpToolError(f"{qualified} asks a question of {len(message)} characters (at most "
                               f"{MAX_MESSAGE_CHARS * 4}); the call was not completed")
        problem = _schema_problem(params.requested_schema)
        if problem is not None:
            raise McpToolError(f"{qualified} asks for input with a schema agentops does not put to a person "
                               f"({problem}); the call was not completed")
        out[str(key)[:200]] = {"message": message, "requested_schema": dict(params.requested_schema)}
    return out


def _schema_problem(schema: Any) -> str | None:
    """Why a requested schema is not the flat form MCP allows for elicitation (an object of primitive fields), or
    None. Anything else (nested objects, arrays, $ref, patterns, a huge schema) is not shown to an approver."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return "it is not an object schema"
    if len(serialization.dumps(schema)) > MAX_SCHEMA_CHARS:
        return f"it is longer than {MAX_SCHEMA_CHARS} characters"
    if set(schema) - {"type", "properties", "required", "title", "description", "$schema"}:
        return f"it has keys {sorted(set(schema) - {'type', 'properties', 'required', 'title', 'description'})}"
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or len(properties) > 20:
        return "its properties are not a mapping of at most 20 fields"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) and r in properties for r in required):
        return "its 'required' does not name its fields"
    for name, prop in properties.items():
        if not isinstance(prop, dict) or prop.get("type") not in _PRIMITIVE or set(prop) - _PROPERTY_KEYS:
            return f"field '{str(name)[:60]}' is not a plain string, number, integer or boolean"
        if "enum" in prop and not (isinstance(prop["enum"], list) and all(
                isinstance(v, str | int | float | bool) for v in prop["enum"])):
            return f"field '{str(name)[:60]}' has an enum that is not a list of plain values"
    return None


def _content_text(qualified: str, content: list[Any]) -> str:
    """The result's blocks as text: text blocks as they are, others (images, audio, resources) named but not
    passed on; at most MAX_RESULT_CHARS of it."""
    parts: list[str] = []
    size = 0
    for part in content:
        kind = getattr(part, "type", "?")
        if kind == "text":
            piece = str(getattr(part, "text", ""))
        elif kind == "resource":
            resource = getattr(part, "resource", None)
            piece = (f"[{qualified} attached the resource {str(getattr(resource, 'uri', '?'))[:200]} "
                     f"({getattr(resource, 'mime_type', None) or 'no type'}); agentops does not pass it on]")
        else:
            piece = (f"[{qualified} attached {kind} content ({getattr(part, 'mime_type', None) or 'no type'}); "
                     "agentops does not pass it on]")
        parts.append(piece)
        size += len(piece)
        if size > MAX_RESULT_CHARS:
            break
    text = "".join(parts)
    if size > MAX_RESULT_CHARS or len(parts) < len(content):
        text = f"{text[:MAX_RESULT_CHARS]} [... the rest of {qualified}'s answer was cut by agentops]"
    return text


def _structured(qualified: str, value: Any) -> Any:
    if value is None or len(serialization.dumps(value)) <= MAX_STRUCTURED_CHARS:
        return value
    return {"agentops": f"{qualified}'s structured answer is longer than {MAX_STRUCTURED_CHARS} characters and "
                        "was not kept"}


def call_tool(root: Path, qualified: str, args: dict[str, Any], *, screened_digest: str | None,
              pinned_digest: str | None, meta: dict[str, Any], resume: Resume | None = None) -> tuple[str, Any]:
    """Call the tool after listing its live definition in the same session; (text, structured).
    McpInputRequired when the server asks for input first."""
    server, tool = split_name(qualified)
    config = _server(root, server)
    seen: list[list[str]] = []

    async def call(client: Client, asked: list[str]) -> tuple[str, Any]:
        from mcp_types import ElicitResult, InputRequiredResult

        seen.append(asked)
        live = {d.name: d for d in await _listed(server, client)}.get(tool)
        if live is None:
            raise McpCallRefused(f"MCP server '{server}' no longer offers '{tool}'")
        if live.digest != screened_digest:
            raise McpCallRefused(f"the definition of {qualified} changed since the call was screened and "
                                 f"approved (now {live.digest[:12]}, approved {(screened_digest or '-')[:12]}); "
                                 "the call was not made")
        if live.digest != pinned_digest:
            raise McpCallRefused(f"the definition of {qualified} is not the pinned one; an admin must re-pin "
                                 f"it (agentops mcp pin {server} {tool})")
        responses = None if resume is None else {
            k: ElicitResult.model_validate(v) for k, v in resume.input_responses.items()}
        result = await client.session.call_tool(
            tool, args, meta=cast("RequestParamsMeta", meta), allow_input_required=True,
            input_responses=cast("Any", responses), request_state=resume.request_state if resume else None)
        if isinstance(result, InputRequiredResult):
            raise McpInputRequired(qualified, _input_requests(qualified, result), result.request_state)
        text = _content_text(qualified, list(getattr(result, "content", None) or []))
        if asked:
            raise McpToolError(_MID_CALL.format(qualified=qualified, asked=_asked_text(asked))
                               + f" (it said: {_cut(text, MAX_MESSAGE_CHARS)})")
        if getattr(result, "is_error", False):
            raise McpToolError(text or f"{qualified} returned an error")
        return text, _structured(qualified, getattr(result, "structured_content", None))

    try:
        return _in_session(server, config, call)
    except (McpCallRefused, McpInputRequired, ConfigError, RuntimeError):
        raise
    except Exception as exc:
        said = _cut(_describe(exc), MAX_MESSAGE_CHARS * 2)
        asked = seen[0] if seen else []
        if asked or "elicitation" in said:
            raise RuntimeError(_MID_CALL.format(qualified=qualified, asked=_asked_text(asked) or said)) from None
        raise RuntimeError(f"MCP server '{server}': {said}") from None


_MID_CALL = ("{qualified} asked for input in the middle of the call ({asked}); a live call cannot wait for a person, "
             "so the request was cancelled and the call did not complete. The server would have to ask with an "
             "InputRequiredResult (MCP 2026-07-28) for agentops to put the question in the approvals inbox")


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:  # an ExceptionGroup from the SDK's task groups: say what is inside
        return _describe(inner[0])
    return f"{type(exc).__name__}: {exc}"


def _make_tool_class() -> type:
    from langchain_core.tools import BaseTool

    class _McpTool(BaseTool):
        """One MCP server tool as a LangChain tool; see the module docstring."""

        definition: ToolDefinition
        root: Path

        def _run(self, **kwargs: Any) -> Any:
            from agentops.engine.toolkit import check_fence, current_run_id, idempotency_key, pinned_digest

            screened = kwargs.pop(DEFINITION_KEY, None)
            meta = {META_IDEMPOTENCY_KEY: idempotency_key()}
            run_id = current_run_id()
            if run_id is not None:
                meta[META_RUN_ID] = run_id
            check_fence()
            hidden = Redactor(config_secrets(_server(self.root, self.definition.server)))
            try:
                text, structured = call_tool(self.root, self.definition.qualified, kwargs, screened_digest=screened,
                                             pinned_digest=pinned_digest(self.definition), meta=meta,
                                             resume=resuming.get())
            except (McpCallRefused, McpToolError, ConfigError, RuntimeError) as exc:
                said = hidden.text(str(exc))
                if said == str(exc):
                    raise
                raise type(exc)(said) from None
            return hidden(text) if text or structured is None else hidden(structured)

    return _McpTool


_tool_class: type | None = None


class McpTool:
    """Builds the LangChain tool of one MCP definition (langchain loads on first use, not on import)."""

    @staticmethod
    def of(root: Path, definition: ToolDefinition) -> BaseTool:
        global _tool_class
        if _tool_class is None:
            _tool_class = _make_tool_class()
        tool: BaseTool = _tool_class(
            name=f"{definition.server}__{definition.name}", description=definition.description or definition.name,
            args_schema=definition.input_schema, definition=definition, root=root,
            metadata={"side_effect": not definition.hint("readOnlyHint"), "mcp": definition.qualified})
        return tool


def definition_of(tool: Any) -> ToolDefinition | None:
    """The MCP definition behind a LangChain tool, or None for a local tool."""
    definition = getattr(tool, "definition", None)
    return definition if isinstance(definition, ToolDefinition) else None
