"""The service layer: what the CLI, the app and the chat call. Every action a person takes goes through here."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops import approvals, serialization
from agentops.errors import AgentOpsError, NotFoundError
from agentops.flows import Flow, get_flow, registered_flows
from agentops.ledger import Event, VerifyReport, verify_rows
from agentops.project import load_project
from agentops.records import LogRecord, RunRecord, StepRecord
from agentops.runner import RunOutcome, cancel_run, create_run, execute_run, local_worker_id, resume_run
from agentops.states import State
from agentops.store import Store, open_store
from agentops.users import CAN_ADMIN, CAN_OPERATE, require_user

if TYPE_CHECKING:
    from agentops.tables import Approval, LedgerEvent


def store() -> Store:
    return open_store()


def actor_of(user: str | None, default: str = "system:cli") -> str:
    return f"user:{user}" if user else default


# -- flows and runs -------------------------------------------------------------------------------


def list_flows() -> list[Flow[Any, Any]]:
    """The project's flows (the built-in chat dispatcher is not listed)."""
    from agentops.chat import DISPATCHER_FLOW

    load_project()
    return sorted((f for f in registered_flows().values() if f.name != DISPATCHER_FLOW), key=lambda f: f.name)


def find_flow(name: str) -> Flow[Any, Any]:
    load_project()
    return get_flow(name)


def start_run(flow_name: str, parameters: dict[str, Any], *, user: str | None = None, trigger: str = "manual",
              queue: bool = True, check_role: bool = True) -> str:
    """Validate and store a run. Queued runs wait for a worker; otherwise the caller executes it."""
    flow = find_flow(flow_name)
    st = store()
    if user and check_role:
        require_user(st, user, CAN_OPERATE, "starting runs")
    return create_run(flow, parameters, trigger=trigger, created_by=user, queue=queue, store=st,
                      worker_id=None if queue else local_worker_id())


def run_now(flow_name: str, parameters: dict[str, Any], *, user: str | None = None,
            trigger: str = "manual") -> RunOutcome:
    run_id = start_run(flow_name, parameters, user=user, trigger=trigger, queue=False)
    return execute_run(run_id, worker_id=local_worker_id(), store=store())


def resolve_run_id(run_id: str) -> str:
    """Accept a full run id or a unique prefix of at least 6 characters."""
    st = store()
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
    run = store().get_run(resolve_run_id(run_id))
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
    return store().list_runs(state=state, flow=flow, trigger=trigger, since=since, until=until, limit=limit,
                             offset=offset)


def count_runs(**filters: Any) -> int:
    return store().count_runs(**filters)


@dataclass
class RunDetail:
    run: RunRecord
    steps: list[StepRecord]
    logs: list[LogRecord]
    history: list[LedgerEvent]
    approvals: list[Approval]


def run_detail(run_id: str) -> RunDetail:
    st = store()
    run = get_run(run_id)
    return RunDetail(run=run, steps=st.steps_for_run(run.id), logs=st.logs_for_run(run.id),
                     history=st.search_ledger(run_id=run.id, limit=10_000, ascending=True),
                     approvals=st.list_approvals(status=None, run_id=run.id))


def resume(run_id: str, *, user: str | None = None) -> RunOutcome:
    load_project()
    st = store()
    if user:
        require_user(st, user, CAN_OPERATE, "resuming runs")
    return resume_run(resolve_run_id(run_id), actor=actor_of(user), store=st)


def cancel(run_id: str, *, user: str | None = None) -> None:
    st = store()
    if user:
        require_user(st, user, CAN_OPERATE, "cancelling runs")
    run_id = resolve_run_id(run_id)
    cancel_run(run_id, actor=actor_of(user), store=st)
    for appr in st.list_approvals(status="pending", run_id=run_id):
        st.append_events([Event(actor=actor_of(user), action="approval.cancelled", run_id=run_id,
                                approval_id=appr.id, payload={"reason": "run cancelled"})])


def rerun(run_id: str, *, user: str | None = None, queue: bool = True) -> str:
    run = get_run(run_id)
    return start_run(run.flow_name, serialization.loads(run.parameters) or {}, user=user, trigger="rerun",
                     queue=queue)


def chat_send(message: str, *, user: str | None, conversation_id: str | None = None) -> Any:
    """Send a chat message to the dispatcher; returns a ChatReply (answer, started runs)."""
    from agentops.chat import send

    load_project()
    st = store()
    if user:
        require_user(st, user, CAN_OPERATE, "chatting")
    return send(message, user=user, conversation_id=conversation_id)


def chat_history(conversation_id: str) -> list[Any]:
    return store().chat_messages(conversation_id)


def pending_approvals_for(run_id: str) -> list[Approval]:
    return store().list_approvals(status="pending", run_id=run_id)


def follow_run(run_id: str, *, execute_if_unclaimed_after: float | None = 0.5) -> RunRecord:
    """Wait for a queued run to start (a worker may claim it); run it here if nobody does. Returns its row."""
    st = store()
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


# -- approvals ------------------------------------------------------------------------------------


def list_approvals(status: str | None = "pending", limit: int = 200) -> list[Approval]:
    return store().list_approvals(status=status if status != "all" else None, limit=limit)


def get_approval(approval_id: str) -> Approval:
    st = store()
    appr = st.get_approval(approval_id)
    if appr is None and len(approval_id) >= 6:
        matches = [a for a in st.list_approvals(status=None, limit=100_000) if a.id.startswith(approval_id)]
        appr = matches[0] if len(matches) == 1 else None
    if appr is None:
        raise NotFoundError(f"no approval with id '{approval_id}'")
    return appr


def _edit_validator() -> approvals.EditValidator | None:
    try:
        from agentops.governance import validate_edited_args
    except ImportError:
        return None
    return validate_edited_args


def decide(approval_id: str, kind: str, *, user: str | None, args_digest: str | None = None,
           edited_args: dict[str, Any] | None = None, message: str | None = None) -> approvals.Decision | None:
    appr = get_approval(approval_id)
    return approvals.decide(store(), appr.id, kind, user=user, args_digest=args_digest, edited_args=edited_args,
                            message=message, validate_edit=_edit_validator())


# -- audit ----------------------------------------------------------------------------------------


def audit_verify() -> VerifyReport:
    return verify_rows(store().iter_ledger())


def audit_search(**filters: Any) -> list[LedgerEvent]:
    return store().search_ledger(**filters)


def ledger_record(ev: LedgerEvent) -> dict[str, Any]:
    return {"seq": ev.seq, "ts": ev.ts, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev.ts)) +
            f".{int((ev.ts % 1) * 1e6):06d}Z", "actor": ev.actor, "action": ev.action, "run_id": ev.run_id,
            "step_no": ev.step_no, "approval_id": ev.approval_id, "payload": serialization.loads(ev.payload),
            "policy_hash": ev.policy_hash, "prev_hash": ev.prev_hash, "hash": ev.hash}


def audit_export(*, since: float | None = None, until: float | None = None) -> Iterator[str]:
    """JSON lines, one per event, oldest first, for a SIEM."""
    import json

    st = store()
    after = 0
    while True:
        batch = st.search_ledger(since=since, until=until, limit=5000, ascending=True, after_seq=after)
        if not batch:
            return
        for ev in batch:
            yield json.dumps(ledger_record(ev), separators=(",", ":"), sort_keys=True)
        after = batch[-1].seq or after


# -- users ----------------------------------------------------------------------------------------


def add_user(name: str, role: str, password: str | None, *, actor_user: str | None = None) -> None:
    from agentops.users import add_user as _add

    st = store()
    if actor_user:
        require_user(st, actor_user, CAN_ADMIN, "adding users")
    _add(st, name, role, password, actor=actor_of(actor_user))


def authenticate(name: str, password: str) -> Any:
    from agentops.users import authenticate as _auth

    return _auth(store(), name, password)


def project_path(*parts: str) -> Path:
    return load_project().joinpath(*parts)


def oidc_login(claims: dict[str, Any]) -> Any:
    """The local account for an identity from the OIDC provider (created on first login); login recorded."""
    from agentops.settings import get_settings
    from agentops.users import oidc_login as _oidc_login

    return _oidc_login(store(), claims, get_settings().oidc_default_role)


def run_flow_names() -> list[str]:
    """Flow names that have runs, for filters (the registry may not hold retired flows)."""
    return store().flow_names()


def audit_count() -> int:
    return store().ledger_count()


# -- data -----------------------------------------------------------------------------------------


def list_datasets() -> list[str]:
    from agentops.data import list_datasets as datasets_under

    return sorted(datasets_under(project_path()))


def ask_data(dataset: str, question: str, *, user: str | None) -> dict[str, Any]:
    """A question to a dataset from a person (the app's Data page); recorded in the ledger."""
    from agentops.data import answer_question

    st = store()
    require_user(st, user, CAN_OPERATE, "asking the data")
    result = answer_question(dataset, question, root=project_path())
    record = result.to_record(max_rows=200)
    st.append_events([Event(actor=actor_of(user), action="data.query",
                            payload={"dataset": dataset, "question": question, "method": result.method,
                                     "sql": result.sql, "code": result.code, "answer": result.answer})])
    return record | {"chart_png": result.chart_png}
