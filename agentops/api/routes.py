"""/api/v1: flows, runs and their steps, approvals and decisions, each through the service layer's checks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from agentops import service
from agentops.api.app import ApiUser
from agentops.core import serialization

router = APIRouter(prefix="/api/v1")


class StartRun(BaseModel):
    flow: str = Field(description="A flow name, as `agentops flows list` shows it.")
    parameters: dict[str, Any] = Field(default_factory=dict)


class Started(BaseModel):
    run_id: str


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject", "edit", "respond"]
    args_digest: str | None = Field(default=None, description="The digest of the arguments you reviewed.")
    args: dict[str, Any] | None = Field(default=None, description="Replacement arguments, for `edit`.")
    message: str | None = Field(default=None, description="The reason of a rejection, or the response.")
    response: dict[str, Any] | None = Field(default=None, description="The answer to a request for input (an "
                                            "approval of kind `respond`), fitting its `requested_schema`.")


class DecisionOut(BaseModel):
    approval_id: str
    outcome: str = Field(description="The decision, or `vote_recorded` while more approvers are needed.")


def _json(text: str | None, what: str) -> Any:
    return None if text is None else serialization.loads(text, what)


def _run(run: Any) -> dict[str, Any]:
    return asdict(run) | {"parameters": _json(run.parameters, f"run {run.id} parameters"),
                          "result": _json(run.result, f"run {run.id} result")}


@router.get("/flows")
def flows(_user: ApiUser) -> list[dict[str, Any]]:
    return [{"name": f.name, "description": f.description} for f in service.list_flows()]


@router.post("/runs", status_code=status.HTTP_201_CREATED)
def start_run(body: StartRun, user: ApiUser) -> Started:
    """Queue a run for a worker, as the token's account (operators, approvers and admins may)."""
    return Started(run_id=service.start_run(body.flow, body.parameters, user=user, trigger="api"))


@router.get("/runs")
def runs(_user: ApiUser, state: str | None = None, flow: str | None = None,
         limit: int = Query(default=50, ge=1, le=500), offset: int = Query(default=0, ge=0)) -> list[dict[str, Any]]:
    return [_run(r) for r in service.list_runs(state=state, flow=flow, limit=limit, offset=offset)]


@router.get("/runs/{run_id}")
def run(run_id: str, _user: ApiUser) -> dict[str, Any]:
    return _run(service.get_run(run_id))


@router.get("/runs/{run_id}/steps")
def steps(run_id: str, _user: ApiUser) -> list[dict[str, Any]]:
    return [asdict(s) for s in service.run_steps(service.resolve_run_id(run_id))]


@router.get("/approvals")
def approvals(_user: ApiUser, status: str = "pending") -> list[dict[str, Any]]:
    return [a.model_dump() | {"args": _json(a.args, f"approval {a.id} arguments")}
            for a in service.list_approvals(status)]


@router.post("/approvals/{approval_id}/decision")
def decide(approval_id: str, body: DecisionIn, user: ApiUser) -> DecisionOut:
    """Decide as the token's account, with every check a decision in the CLI or the app gets."""
    result = service.decide(approval_id, body.decision, user=user, args_digest=body.args_digest,
                            edited_args=body.args, message=body.message, response=body.response)
    return DecisionOut(approval_id=service.get_approval(approval_id).id,
                       outcome="vote_recorded" if result is None else result.kind)
