"""The app's pages say things in words (AppTest, a real project database): approval cards titled by their effect
with a long mail cut to its first lines, the runs list's durations, the audit ledger's events and payloads, a
schedule's cadence and parameters."""

from __future__ import annotations

from pathlib import Path

from agentops import flow, request_approval, service
from agentops.db import open_store
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from tests import app_fixtures
from tests.app_fixtures import PendingIncident
from tests.test_app import _no_cookies_left_over as _no_cookies_left_over
from tests.test_app import app_project as app_project
from tests.test_app import incident as incident
from tests.test_app import logged_in

BODY = "\n".join(f"report line {n}" for n in range(40))


@flow
def app_words_mailer(to: str) -> str:
    decision = request_approval("send_email", {"to": [to], "subject": "Weekly report", "body": BODY},
                                reason="the flow called send_email", requester="agent:analyst")
    return decision.kind


def markdown_text(at) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(m.value.replace("\\", "") for m in at.markdown)


def test_a_scale_card_is_titled_current_to_proposed(incident: PendingIncident) -> None:
    at = logged_in("ada")
    assert "#### Scale web-app: 6 → 12" in markdown_text(at)
    assert any(f"tool `scale_deployment` · request `{incident.approval_id}`" in c.value for c in at.caption)


def test_a_long_mail_shows_fifteen_lines_and_the_rest_in_an_expander(ops_project: Path) -> None:
    app_fixtures.add_users()
    run_id = create_run(app_words_mailer, {"to": "ops@example.com"}, store=open_store())
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    [pending] = service.pending_approvals_for(run_id)
    at = logged_in("ada")
    assert not at.exception, at.exception
    shown = markdown_text(at)
    assert "#### Send an email to ops@example.com" in shown
    assert "the flow called send_email" not in shown and "the flow's code asks for this call" in shown
    texts = [t.value for t in at.text]
    assert "\n".join(f"report line {n}" for n in range(15)) in texts
    assert "\n".join(f"report line {n}" for n in range(15, 40)) in texts
    assert not any("report line 14\nreport line 15" in t for t in texts), "the body is cut, not drawn whole"
    assert "The rest of the message (25 more lines)" in [e.label for e in at.expander]
    assert pending.status == "pending"


def test_the_runs_list_says_how_long_a_run_has_waited(incident: PendingIncident) -> None:
    at = logged_in("otto")
    at.switch_page("app_pages/runs.py").run()
    listed = at.dataframe(key="runs-table").value
    [row] = listed[listed["run"] == incident.run_id].to_dict("records")
    assert row["duration"].startswith("waiting ") and row["by"] == "otto"


def test_the_audit_page_reads_events_in_words_with_whole_ids_and_opens_a_payload(incident: PendingIncident) -> None:
    at = logged_in("vera")
    at.switch_page("app_pages/audit.py").run()
    at.text_input(key="audit-action").input("approval.requested").run()
    [row] = at.dataframe(key="audit-events").value.to_dict("records")
    assert row["what"].startswith("asks to scale_deployment(name=web-app, replicas=12)")
    assert row["run"] == incident.run_id and row["approval"] == incident.approval_id
    assert "payload" not in row
    at.session_state["audit-events"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    [code] = [c.value for c in at.code]
    assert '"action": "scale_deployment"' in code and '\n  "args": {' in code, "the whole payload, pretty"


def test_a_schedule_reads_in_words_with_only_the_parameters_it_sets(app_project: Path) -> None:
    service.schedules.add_schedule("hello", cron="0 9 * * 1-5", timezone="Europe/Berlin", user="otto")
    at = logged_in("otto")
    at.switch_page("app_pages/schedules.py").run()
    assert "weekdays at 09:00 Europe/Berlin (cron 0 9 * * 1-5)" in markdown_text(at)
    assert any("not fired yet" in c.value and "parameters: the flow's defaults" in c.value.replace("\\", "")
               for c in at.caption)
