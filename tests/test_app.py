"""The app's pages through streamlit.testing.v1.AppTest, against a real project database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import streamlit.runtime.context
from streamlit.testing.v1 import AppTest

from agentops import service
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.errors import PermissionDenied
from tests import app_fixtures
from tests.app_fixtures import USERS, PendingIncident, pending_incident

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")


@pytest.fixture
def app_project(ops_project: Path) -> Path:
    return app_fixtures.app_project(ops_project)


@pytest.fixture
def incident(app_project: Path) -> PendingIncident:
    return pending_incident()


@dataclass
class FakeBrowserConnection:
    """What a browser's websocket handshake hands the app: its cookies (AppTest has no browser to send them)."""

    cookies: dict[str, str] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    remote_ip: str | None = "127.0.0.1"


BROWSER = FakeBrowserConnection()


def _connection() -> FakeBrowserConnection:
    return BROWSER


streamlit.runtime.context._get_client_context = _connection  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _no_cookies_left_over() -> Iterator[None]:
    BROWSER.cookies.clear()
    yield
    BROWSER.cookies.clear()


def with_cookie(value: str | None) -> AppTest:
    BROWSER.cookies.clear()
    if value is not None:
        BROWSER.cookies[service.sessions.SESSION_COOKIE] = value
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def logged_in(name: str) -> AppTest:
    """The app as the browser sees it after the login route set the session cookie."""
    issued = service.sessions.log_in(name, USERS[name][1])
    assert issued is not None
    at = with_cookie(issued.cookie)
    assert "logout" in keys(at), "logged in"
    return at


def keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_no_expired_or_logged_out_session_opens_a_page_and_the_role_is_read_afresh(app_project: Path) -> None:
    at = with_cookie(None)
    assert "logout" not in keys(at) and any('href="/session/login?next=' in m.value for m in at.markdown)
    issued = service.sessions.log_in("ada", USERS["ada"][1])
    assert issued is not None
    at = with_cookie(issued.cookie)
    assert [t.value for t in at.title] == ["Approvals"] and "logout" in keys(at)
    at.button(key="logout").click().run()
    assert "logout" not in keys(at) and "You are logged out." in [i.value for i in at.info]
    assert service.sessions.check_session(issued.cookie).status == "ended"
    assert "logout" not in keys(with_cookie(issued.cookie)), "the same cookie, sent again, is refused"
    actions = [e.action for e in service.audit_search(actor="user:ada")]
    assert {"user.login", "session.started", "user.logout"} <= set(actions)


def test_an_approver_approves_and_the_run_scales_the_cluster(incident: PendingIncident) -> None:
    at = logged_in("ada")
    assert "scale_deployment" in " ".join(m.value for m in at.markdown)
    at.button(key=f"approve-inbox-{incident.approval_id}").click().run()
    assert [s.value for s in at.success] == [f"{incident.approval_id[:12]}: approve by ada"]
    decided = service.get_approval(incident.approval_id)
    assert decided.status == "approved" and decided.decided_by == "ada"
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert service.get_run(incident.run_id).state == "COMPLETED"
    assert {d.name: d.replicas for d in open_store().deployments()}["web-app"] == 12
    assert f"approve-inbox-{incident.approval_id}" not in keys(at.run())


def test_a_click_in_a_tab_whose_session_was_logged_out_elsewhere_decides_nothing(incident: PendingIncident) -> None:
    at = logged_in("ada")
    approve = at.button(key=f"approve-inbox-{incident.approval_id}")
    assert service.sessions.log_out(BROWSER.cookies[service.sessions.SESSION_COOKIE])
    approve.click().run()
    assert service.get_approval(incident.approval_id).status == "pending"
    assert "logout" not in keys(at) and "You are logged out." in [i.value for i in at.info]
    assert service.audit_search(action="approval.decided") == []


def test_a_viewer_sees_requests_but_no_decision_buttons_and_a_forged_decision_fails(
        incident: PendingIncident) -> None:
    at = logged_in("vera")
    assert "scale_deployment" in " ".join(m.value for m in at.markdown)
    assert not {k for k in keys(at) if k.startswith(("approve-", "edit-", "reject-"))}
    assert any("can see this request but not decide" in c.value for c in at.caption)
    with pytest.raises(PermissionDenied, match="role 'viewer'"):
        service.decide(incident.approval_id, "approve", user="vera")
    assert service.get_approval(incident.approval_id).status == "pending"


def test_edit_shows_the_diff_and_runs_the_edited_arguments(incident: PendingIncident) -> None:
    at = logged_in("ada")
    edited = {"name": "web-app", "replicas": 9}
    at.text_area(key=f"edit-args-inbox-{incident.approval_id}").input(json.dumps(edited)).run()
    diff = [c.value for c in at.code if c.language == "diff"]
    assert diff and '-  "replicas": 12' in diff[0] and '+  "replicas": 9' in diff[0]
    at.button(key=f"edit-inbox-{incident.approval_id}").click().run()
    assert service.get_approval(incident.approval_id).status == "edited"
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    assert {d.name: d.replicas for d in open_store().deployments()}["web-app"] == 9


def test_an_edit_that_is_not_json_or_breaks_the_schema_is_refused_in_place(incident: PendingIncident) -> None:
    at = logged_in("ada")
    at.text_area(key=f"edit-args-inbox-{incident.approval_id}").input("{replicas: 9").run()
    assert any("not valid JSON" in e.value for e in at.error)
    at.text_area(key=f"edit-args-inbox-{incident.approval_id}").input('{"name": "web-app", "replicas": "lots"}').run()
    at.button(key=f"edit-inbox-{incident.approval_id}").click().run()
    assert at.error and service.get_approval(incident.approval_id).status == "pending"


def test_reject_sends_the_message_back(incident: PendingIncident) -> None:
    at = logged_in("ada")
    at.text_input(key=f"reject-message-inbox-{incident.approval_id}").input("peak is over; keep 6")
    at.button(key=f"reject-inbox-{incident.approval_id}").click().run()
    decided = service.get_approval(incident.approval_id)
    assert decided.status == "rejected" and json.loads(decided.decision)["message"] == "peak is over; keep 6"
    assert "peak is over; keep 6" in json.dumps(at.dataframe[0].value.to_dict())


def test_runs_page_filters_and_shows_a_runs_timeline_and_steps(incident: PendingIncident) -> None:
    at = logged_in("otto")
    at.switch_page("app_pages/runs.py").run()
    at.selectbox(key="runs-state").select("AWAITING_APPROVAL").run()
    listed = at.dataframe(key="runs-table").value
    assert list(listed["run"]) == [incident.run_id]
    at.text_input(key="runs-open").input(incident.run_id[:10]).run()
    assert not at.exception, at.exception
    assert any("incident_response" in h.value for h in at.subheader)
    labels = [e.label for e in at.expander]
    assert any("incident.model" in label and "model" in label for label in labels)
    assert any("scale_deployment" in label for label in labels)
    assert {"run-cancel", "run-rerun"} <= keys(at)
    at.selectbox(key="runs-state").select("FAILED").run()
    assert at.dataframe(key="runs-table").value.empty


def test_audit_page_verifies_the_chain(incident: PendingIncident) -> None:
    at = logged_in("vera")
    at.switch_page("app_pages/audit.py").run()
    at.button(key="audit-verify").click().run()
    assert next(s.value for s in at.success).startswith("OK: ")
    at.text_input(key="audit-action").input("approval.requested").run()
    assert list(at.dataframe[0].value["action"]) == ["approval.requested"]


def test_schedules_page_adds_and_pauses(app_project: Path) -> None:
    at = logged_in("otto")
    at.switch_page("app_pages/schedules.py").run()
    at.selectbox(key="schedule-flow").select("hello")
    at.radio(key="schedule-kind").set_value("interval")
    at.number_input(key="schedule-interval").set_value(600.0)
    at.button(key="schedule-add-submit").click().run()
    [created] = open_store().list_schedules()
    assert created.flow_name == "hello" and created.interval_seconds == 600.0 and created.created_by == "otto"
    at.button(key=f"schedule-toggle-{created.id}").click().run()
    assert open_store().get_schedule(created.id).paused


def test_an_approver_sees_schedules_but_cannot_add_or_pause_them(app_project: Path) -> None:
    sid = service.schedules.add_schedule("hello", cron="0 9 * * 1-5", user="otto")
    at = logged_in("ada")
    at.switch_page("app_pages/schedules.py").run()
    keys = {getattr(b, "key", None) for b in at.button}
    assert f"schedule-toggle-{sid}" not in keys and "schedule-add-submit" not in keys
    assert not any(getattr(s, "key", None) == "schedule-flow" for s in at.selectbox)


def test_backends_page_shows_the_simulated_cluster(app_project: Path) -> None:
    at = logged_in("vera")
    at.switch_page("app_pages/backends.py").run()
    tickets, cluster, scale_events = (frame.value for frame in at.dataframe)
    assert "web-app" in list(cluster["deployment"]) and tickets.empty and scale_events.empty


def test_an_oidc_identity_gets_a_session_of_its_account_and_is_recorded(app_project: Path) -> None:
    issued = service.sessions.log_in_oidc({"is_logged_in": True, "email": "sso.person@example.com",
                                           "name": "SSO Person"})
    at = with_cookie(issued.cookie)
    assert [t.value for t in at.title] == ["Approvals"]
    assert open_store().get_user("sso.person@example.com").role == "viewer"
    logins = service.audit_search(actor="user:sso.person@example.com", action="user.login")
    assert json.loads(logins[0].payload)["via"] == "oidc"
    [started] = service.audit_search(actor="user:sso.person@example.com", action="session.started")
    assert json.loads(started.payload)["via"] == "oidc"


def test_an_approver_who_started_the_run_from_the_chat_page_cannot_approve_it_in_the_inbox(
        app_project: Path) -> None:
    worker = Worker(open_store(), poll_seconds=0.02)
    working = threading.Thread(target=worker.run, daemon=True)
    working.start()
    try:
        at = logged_in("ada")
        at.switch_page("app_pages/chat.py").run()
        at.chat_input(key="chat-input").set_value("web-app is at 95% CPU, handle it").run()
        assert not at.exception, at.exception
    finally:
        worker.stop()
        working.join(30)
    [run] = service.list_runs(flow="incident_response")
    assert run.created_by == "ada" and run.trigger == "chat"
    [pending] = service.pending_approvals_for(run.id)
    at.switch_page("app_pages/approvals.py").run()
    at.button(key=f"approve-inbox-{pending.id}").click().run()
    assert any("'ada' started the run behind" in e.value and "maker-checker" in e.value for e in at.error)
    assert service.get_approval(pending.id).status == "pending" and service.audit_search(
        action="approval.decided") == []


def test_a_waiting_runs_page_draws_its_conversation_cards_badges_and_approval_link(incident: PendingIncident) -> None:
    at = logged_in("vera")
    at.switch_page("app_pages/runs.py").run()
    at.text_input(key="runs-open").input(incident.run_id).run()
    assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant", "assistant"]
    assert any(e.label == "System prompt" for e in at.expander), "the system prompt is folded away"
    shown = [m.value.replace("\\", "") for m in at.markdown]  # as read, markdown escapes undone
    assert any(":green-badge[allow · tools.get_metrics]" in v for v in shown)
    assert any(":orange-badge[require_approval · tools.scale_deployment.when[0]]" in v for v in shown)
    link = f"(/approvals?request={incident.approval_id})"
    assert sum(link in v for v in shown) == 2, "on the scale card, and where the result would be"
    assert not any("'input_tokens'" in v or "{'" in v for v in shown + [c.value for c in at.caption])
    assert any("playbook · 0 input · 0 output · 0 total tokens" in c.value for c in at.caption)
    assert not any(c.value == "-" for c in at.code), "a waiting run shows its approval, not a dash"
    assert "run-cancel" not in keys(at), "a viewer reads the run but gets no actions"


def test_the_runs_list_says_which_runs_had_calls_refused(ops_project: Path) -> None:
    app_fixtures.add_users()
    from agentops.engine.project import load_project

    load_project()
    run_id = service.start_run("incident_response", {"deployment": "web-app", "note": "95% CPU"}, user="otto")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    service.decide(pending.id, "reject", user="ada", message="not now")
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    at = logged_in("otto")
    at.switch_page("app_pages/runs.py").run()
    listed = at.dataframe(key="runs-table").value
    assert list(listed["governed calls"]) == ["⚠ 1 rejected call"]
    at.text_input(key="runs-open").input(run_id).run()
    assert not at.exception, at.exception
    assert any("1 rejected call" in w.value for w in at.warning)
    assert any("rejected by ada" in m.value and "not now" in m.value for m in at.markdown)


def test_a_flows_own_request_is_drawn_as_a_card_with_its_link(ops_project: Path) -> None:
    from agentops.engine.runner import create_run
    from tests.test_run_view import run_view_asks_itself

    app_fixtures.add_users()
    run_id = create_run(run_view_asks_itself, {"n": 2}, store=open_store())
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    at = logged_in("otto")
    at.switch_page("app_pages/runs.py").run()
    at.text_input(key="runs-open").input(run_id).run()
    assert not at.exception, at.exception
    shown = [m.value.replace("\\", "") for m in at.markdown]
    assert any(":gray-badge[asked for by the flow]" in v and "run_view_release" in v for v in shown)
    assert sum(f"(/approvals?request={pending.id})" in v for v in shown) == 2
    assert at.chat_message.len == 0
