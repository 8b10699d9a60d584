"""Flows and runs for every face: start, follow, resume, cancel, rerun; the chat's door."""

from __future__ import annotations

import contextlib
import getpass
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops.core import serialization
from agentops.core.states import State
from agentops.db import open_store
from agentops.db.records import LogRecord, RunRecord, StepRecord
from agentops.engine.flows import Flow
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow, registered_flows
from agentops.engine.runner import (
    CREATED_EPOCH,
    RunOutcome,
    cancel_run,
    create_run,
    execute_run,
    local_worker_id,
    requeue_run,
    resume_run,
)
from agentops.errors import AgentOpsError, NotFoundError, PermissionDenied
from agentops.governance.approvals import cancel_pending
from agentops.governance.users import CAN_OPERATE, require_user
from agentops.service.chat import DISPATCHER_FLOW, send
from agentops.service.outcomes import Outcome, outcome_of, problems_of
from agentops.service.setup import check_settings

if TYPE_CHECKING:
    from agentops.db.schema import Approval, LedgerEvent



def actor_of(user: str | None, default: str = "system:cli") -> str:
    return f"user:{user}" if user else default


# -- flows and runs -------------------------------------------------------------------------------


def list_flows() -> list[Flow[Any, Any]]:
    """The project's flows (the built-in chat dispatcher is not listed)."""
    load_project()
    return sorted((f for f in registered_flows().values() if f.name != DISPATCHER_FLOW), key=lambda f: f.name)


def start_run(flow_name: str, parameters: dict[str, Any], *, user: str | None = None, trigger: str = "manual",
              queue: bool = True, check_role: bool = True) -> str:
    """Validate and store a run. Queued runs wait for a worker; otherwise the caller executes it."""
    flow = find_flow(flow_name)
    check_settings()
    st = open_store()
    if user and check_role:
        require_user(st, user, CAN_OPERATE, "starting runs")
    return create_run(flow, parameters, trigger=trigger, created_by=acting_user(user), queue=queue, store=st,
                      worker_id=None if queue else local_worker_id())


def acting_user(user: str | None) -> str:
    """Who a run or a chat message is recorded as: the named user, or else the operating-system user of this
    process (a local command run without --as), never nobody. Only a named user's role is checked."""
    return user or getpass.getuser()


def run_now(flow_name: str, parameters: dict[str, Any], *, user: str | None = None,
            trigger: str = "manual") -> RunOutcome:
    run_id = start_run(flow_name, parameters, user=user, trigger=trigger, queue=False)
    return execute_run(run_id, worker_id=local_worker_id(), epoch=CREATED_EPOCH, store=open_store())


def resolve_run_id(run_id: str) -> str:
    """Accept a full run id or a unique prefix of at least 6 characters."""
    st = open_store()
    if st.get_run(run_id) is not None:
        return run_id
    if len(run_id) >= 6:
        matches = st.find_run_ids(run_id)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise AgentOpsError(f"run id prefix '{run_id}' is ambiguous; give more characters")
    raise NotFoundError(f"no run with id '{run_id}'")


def get_run(run_id: str) -> RunRecord:
    run = open_store().get_run(resolve_run_id(run_id))
    assert run is not None
    return run


def list_runs(*, state: str | None = None, flow: str | None = None, trigger: str | None = None,
              since: float | None = None, until: float | None = None, limit: int = 50,
              offset: int = 0) -> list[RunRecord]:
    if state:
        try:
            state = State(state.upper()).value
        except ValueError:
            choices = ", ".join(s.value for s in State)
            raise AgentOpsError(f"unknown state '{state}' (choose one of: {choices})") from None
    return open_store().list_runs(state=state, flow=flow, trigger=trigger, since=since, until=until, limit=limit,
                             offset=offset)


def run_outcome(run_id: str) -> Outcome:
    """The run's outcome in words, its refused, rejected and expired calls, and the approvals it waits for."""
    return outcome_of(get_run(run_id))


def run_notes(runs: list[RunRecord]) -> dict[str, str]:
    """Per run, a note on the governed calls that did not go through ("1 refused call"), or ""."""
    problems = problems_of([r.id for r in runs])
    return {r.id: Outcome(r.id, r.flow_name, r.state, problems[r.id]).note for r in runs}


def count_runs(**filters: Any) -> int:
    return open_store().count_runs(**filters)


@dataclass
class RunDetail:
    run: RunRecord
    steps: list[StepRecord]
    logs: list[LogRecord]
    history: list[LedgerEvent]
    approvals: list[Approval]


def run_detail(run_id: str) -> RunDetail:
    st = open_store()
    run = get_run(run_id)
    return RunDetail(run=run, steps=st.steps_for_run(run.id), logs=st.logs_for_run(run.id),
                     history=st.search_ledger(run_id=run.id, limit=10_000, ascending=True),
                     approvals=st.list_approvals(status=None, run_id=run.id))


def resume(run_id: str, *, user: str | None = None) -> RunOutcome:
    load_project()
    st = open_store()
    if user:
        require_user(st, user, CAN_OPERATE, "resuming runs")
    return resume_run(resolve_run_id(run_id), actor=actor_of(user), store=st)


def requeue(run_id: str, *, user: str | None = None) -> str:
    """Queue a resumable run again for a worker (sent to the broker when dispatch is on); returns its id."""
    st = open_store()
    if user:
        require_user(st, user, CAN_OPERATE, "resuming runs")
    run_id = resolve_run_id(run_id)
    requeue_run(run_id, actor=actor_of(user), store=st)
    return run_id


def cancel(run_id: str, *, user: str | None = None) -> None:
    st = open_store()
    if user:
        require_user(st, user, CAN_OPERATE, "cancelling runs")
    run_id = resolve_run_id(run_id)
    cancel_run(run_id, actor=actor_of(user), store=st)
    cancel_pending(st, run_id, actor=actor_of(user))


def rerun(run_id: str, *, user: str | None = None, queue: bool = True) -> str:
    run = get_run(run_id)
    parameters = serialization.loads(run.parameters, f"run {run.id} parameters") or {}
    return start_run(run.flow_name, parameters, user=user, trigger="rerun", queue=queue)


def chat_send(message: str, *, user: str | None, conversation_id: str | None = None) -> Any:
    """Send a chat message to the dispatcher; returns a ChatReply (answer, started runs)."""
    load_project()
    st = open_store()
    if user:
        require_user(st, user, CAN_OPERATE, "chatting")
    author = acting_user(user)
    if conversation_id is not None:
        _check_conversation_id(conversation_id)
        exists, owner = st.conversation_owner(conversation_id)
        if exists and owner != author:
            raise PermissionDenied(f"conversation {conversation_id} is {owner or 'nobody'}'s: you can read it, "
                                   "not write in it (start a new one)")
    return send(message, user=author, conversation_id=conversation_id)


def _check_conversation_id(conversation_id: str) -> None:
    if not (0 < len(conversation_id) <= 32 and conversation_id.isalnum() and conversation_id.isascii()):
        raise AgentOpsError(f"'{conversation_id[:40]}' is not a conversation id (up to 32 letters and digits)")


def chat_history(conversation_id: str) -> list[Any]:
    _check_conversation_id(conversation_id)
    return open_store().chat_messages(conversation_id)


def chat_conversations(*, owner: str | None = None, limit: int = 100) -> list[Any]:
    """Conversations, the latest first, each with who began it; everyone who can log in may read them all."""
    return open_store().conversations(owner=owner, limit=limit)


def conversation_owner(conversation_id: str) -> str | None:
    """Who began a conversation; NotFound for one that does not exist."""
    _check_conversation_id(conversation_id)
    exists, owner = open_store().conversation_owner(conversation_id)
    if not exists:
        raise NotFoundError(f"no conversation {conversation_id}")
    return owner


def pending_approvals_for(run_id: str) -> list[Approval]:
    return open_store().list_approvals(status="pending", run_id=run_id)


def follow_run(run_id: str, *, execute_if_unclaimed_after: float | None = 0.5) -> RunRecord:
    """Wait for a queued run to start (a worker may claim it); run it here if nobody does. Returns its row."""
    st = open_store()
    deadline = time.time() + (execute_if_unclaimed_after or 0)
    run = get_run(run_id)
    while run.state == State.PENDING and time.time() < deadline:
        time.sleep(0.05)
        run = get_run(run_id)
    if run.state == State.PENDING and execute_if_unclaimed_after is not None:
        with contextlib.suppress(AgentOpsError):
            resume_run(run_id, actor="system:chat", store=st)
        run = get_run(run_id)
    return run



def run_flow_names() -> list[str]:
    """Flow names that have runs, for filters (the registry may not hold retired flows)."""
    return open_store().flow_names()


def execute_here(run_id: str) -> RunOutcome:
    """Execute a run that start_run(queue=False) already assigned to this process (under CREATED_EPOCH)."""
    run = get_run(run_id)
    return execute_run(run_id, worker_id=run.worker_id or "", epoch=CREATED_EPOCH, store=open_store())


def run_steps(run_id: str) -> list[StepRecord]:
    return open_store().steps_for_run(run_id)


def run_logs(run_id: str) -> list[LogRecord]:
    return open_store().logs_for_run(run_id)


def project_path(*parts: str) -> Path:
    return load_project().joinpath(*parts)
