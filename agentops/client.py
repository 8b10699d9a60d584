"""A small typed client of the agentops HTTP API: start runs, read runs and steps, list approvals, decide one.

    from agentops.client import AgentOpsClient
    with AgentOpsClient("http://127.0.0.1:8502", token) as api:
        run_id = api.start_run("hello", {"name": "ops"})
        print(api.run(run_id).state)

Each failure is one exception class of `agentops.errors` (ApiUnauthorized, ApiForbidden, ApiNotFound, ApiConflict,
ApiInvalid, ApiUnavailable, ApiProtocolError; all ApiError). It imports httpx, pydantic and agentops.errors only
(an import-linter contract holds it to that), never the database or the engine's state.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from agentops.errors import (
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiInvalid,
    ApiNotFound,
    ApiProtocolError,
    ApiUnauthorized,
    ApiUnavailable,
)

T = TypeVar("T")
Decision = Literal["approve", "reject", "edit", "respond"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Flow(_Model):
    name: str
    description: str = ""


class Run(_Model):
    id: str
    flow_name: str
    state: str
    parameters: dict[str, Any] = {}
    trigger: str = "manual"
    created_by: str | None = None
    parent_run_id: str | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    ended_at: float | None = None
    state_message: str | None = None
    result: Any = None
    error: str | None = None


class Step(_Model):
    run_id: str
    step_no: int
    name: str
    kind: str = "task"
    state: str
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: float | None = None
    output: str | None = None
    error: str | None = None
    tokens: int = 0
    cost: float = 0.0


class Approval(_Model):
    id: str
    run_id: str | None = None
    step_no: int | None = None
    action: str
    args: Any = None
    args_digest: str
    reason: str = ""
    requester: str
    status: str
    quorum: int = 1
    created_at: float
    expires_at: float | None = None
    decided_at: float | None = None
    decided_by: str | None = None


class DecisionResult(_Model):
    approval_id: str
    outcome: str
    """The decision (approve, reject, edit, respond), or `vote_recorded` while more approvers are needed."""


_BY_STATUS: dict[int, type[ApiError]] = {400: ApiInvalid, 401: ApiUnauthorized, 403: ApiForbidden,
                                         404: ApiNotFound, 409: ApiConflict, 413: ApiInvalid, 422: ApiInvalid}


class AgentOpsClient:
    """The API at `base_url` (e.g. http://127.0.0.1:8502) as the account of `token`."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not token:
            raise ApiUnauthorized("no API token given (agentops tokens add NAME --role ROLE makes one)")
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def __enter__(self) -> AgentOpsClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the calls -----------------------------------------------------------------------------------

    def flows(self) -> list[Flow]:
        return self._get(list[Flow], "GET", "/api/v1/flows")

    def start_run(self, flow: str, parameters: dict[str, Any] | None = None) -> str:
        """Queue a run of `flow` (a worker executes it); its id."""
        started: dict[str, str] = self._get(dict[str, str], "POST", "/api/v1/runs", json={"flow": flow,
                                                                          "parameters": parameters or {}})
        if "run_id" not in started:
            raise ApiProtocolError("the API's answer to starting a run has no run_id")
        return started["run_id"]

    def runs(self, *, state: str | None = None, flow: str | None = None, limit: int = 50,
             offset: int = 0) -> list[Run]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params |= {k: v for k, v in (("state", state), ("flow", flow)) if v is not None}
        return self._get(list[Run], "GET", "/api/v1/runs", params=params)

    def run(self, run_id: str) -> Run:
        return self._get(Run, "GET", f"/api/v1/runs/{_segment(run_id)}")

    def steps(self, run_id: str) -> list[Step]:
        return self._get(list[Step], "GET", f"/api/v1/runs/{_segment(run_id)}/steps")

    def approvals(self, status: str = "pending") -> list[Approval]:
        return self._get(list[Approval], "GET", "/api/v1/approvals", params={"status": status})

    def decide(self, approval_id: str, decision: Decision, *, args_digest: str | None = None,
               args: dict[str, Any] | None = None, message: str | None = None) -> DecisionResult:
        """Decide as the token's account; pass the `args_digest` of the request you reviewed."""
        body = {"decision": decision, "args_digest": args_digest, "args": args, "message": message}
        return self._get(DecisionResult, "POST", f"/api/v1/approvals/{_segment(approval_id)}/decision", json=body)

    # -- one request ---------------------------------------------------------------------------------

    def _get(self, shape: type[T] | Any, method: str, path: str, **kwargs: Any) -> T:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ApiUnavailable(f"the API at {self._http.base_url} did not answer in time ({exc})") from None
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"the API at {self._http.base_url} cannot be reached: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            message = str(error) if error else _detail(body) or f"HTTP {response.status_code}"
            kind = _BY_STATUS.get(response.status_code, ApiProtocolError)
            raise kind(f"{method} {path}: {message}", response.status_code)
        try:
            result: T = TypeAdapter(shape).validate_python(body)
        except ValidationError as exc:
            raise ApiProtocolError(f"{method} {path}: unexpected answer: {str(exc).splitlines()[0]}",
                                   response.status_code) from None
        return result


def _segment(value: str) -> str:
    """One path segment, so an id cannot reach another route."""
    if not value or any(c in value for c in "/?#%\\") or value in (".", ".."):
        raise ApiInvalid(f"'{value}' is not an id")
    return value


def _detail(body: Any) -> str:
    """FastAPI's own 422 body: the first problem, in one line."""
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and body["detail"]:
        first = body["detail"][0]
        if isinstance(first, dict):
            return f"{'.'.join(str(p) for p in first.get('loc', []))}: {first.get('msg', '')}"
    return ""
