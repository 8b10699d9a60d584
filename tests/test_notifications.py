"""Approvers are told of a request, reminded before it expires and escalated to when nobody decides.

Against a Slack-compatible webhook on loopback (tests/fakes/webhook.py: down, then up; holding a request while the
delivering process is killed) and an aiosmtpd server; times are the database's, passed in as `now`, so a reminder
due in 45 minutes is tested without waiting for it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agentops import flow, request_approval
from agentops.backends import mail
from agentops.core import serialization
from agentops.db import Store, open_store
from agentops.engine.runner import create_run
from agentops.engine.worker import Worker
from agentops.errors import ConfigError
from agentops.governance.approvals import decide, expire_due
from agentops.governance.users import add_user
from agentops.service import approvals as service_approvals
from agentops.service import views
from agentops.service.links import approval_url
from agentops.service.notifications import deliver_due
from agentops.settings import reset_settings
from tests.app_fixtures import copy_tools
from tests.fakes.smtp import SMTPServer
from tests.fakes.webhook import WebhookServer

APP_URL = "http://127.0.0.1:8599"
HOUR = 3600.0


@flow
def notified_scale(name: str, replicas: int, expires_in: float = HOUR) -> dict:
    decision = request_approval("scale_deployment", {"name": name, "replicas": replicas},
                                reason=f"{name} is hot (key sk-notifyTESTsecret123 leaked in a log)",
                                expires_in=expires_in, requester="user:maker")
    return {"decision": decision.kind}


POLICY = """
notifications:
  webhook_hosts: [{hosts}]
  groups:
    oncall: [alice, oncall@example.com]
    managers: [carol, viv, managers@example.com]
tools:
  scale_deployment:
    verdict: require_approval
    constraints:
      replicas: {{min: 1, max: 20}}
    notify: [slack, email]
    notify_to: [oncall]
    remind_before: 15m
    escalate_after: 30m
    escalate_to: [managers]
  start_flow:
    verdict: allow
"""


def write_policy(project: Path, hosts: str) -> None:
    (project / "policies").mkdir(exist_ok=True)
    (project / "policies" / "notify.yaml").write_text(POLICY.format(hosts=hosts))


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookServer]:
    server = WebhookServer()
    monkeypatch.setenv("AGENTOPS_SLACK_WEBHOOK_URL", server.url)
    monkeypatch.setenv("AGENTOPS_APP_URL", APP_URL)
    monkeypatch.setenv("AGENTOPS_NOTIFY_RETRY_SECONDS", "1")
    reset_settings()
    yield server
    server.stop()


def setup_people(store: Store, project: Path, webhook: WebhookServer, hosts: str | None = None) -> None:
    copy_tools(project)
    write_policy(project, hosts if hosts is not None else f'"127.0.0.1:{webhook.port}"')
    for name, role in [("maker", "approver"), ("alice", "approver"), ("carol", "approver"), ("viv", "viewer")]:
        add_user(store, name, role, "correct horse battery")


def open_request(store: Store, **params: Any) -> tuple[str, Any]:
    run_id = create_run(notified_scale, {"name": "web-app", "replicas": 12, **params}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).state == "AWAITING_APPROVAL"
    [appr] = store.list_approvals(run_id=run_id)
    return run_id, appr


def events(store: Store, run_id: str, prefix: str = "notification.") -> list[tuple[str, str, str, int | None]]:
    """(action, kind, channel, attempt) of the run's notification events, in ledger order."""
    rows = store.search_ledger(run_id=run_id, action=prefix, ascending=True, limit=1000)
    return [(e.action, json.loads(e.payload).get("kind"), json.loads(e.payload).get("channel"),
             json.loads(e.payload).get("attempt")) for e in rows]


def by_kind(store: Store, approval_id: str) -> dict[tuple[str, str], Any]:
    return {(n.kind, n.channel): n for n in store.notifications_for(approval_id)}


def test_the_rows_are_written_with_the_request_and_the_slack_message_links_to_it(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    webhook.start()
    run_id, appr = open_request(store)
    rows = by_kind(store, appr.id)
    assert set(rows) == {(k, c) for k in ("requested", "reminder", "escalation") for c in ("slack", "email")}
    assert rows["requested", "slack"].due_at == appr.created_at
    assert rows["escalation", "slack"].due_at == pytest.approx(appr.created_at + 30 * 60)
    assert rows["reminder", "slack"].due_at == pytest.approx(appr.expires_at - 15 * 60)
    assert serialization.loads(rows["requested", "email"].recipients) == ["alice", "oncall@example.com"]
    assert serialization.loads(rows["reminder", "email"].recipients) == [
        "alice", "oncall@example.com", "carol", "viv", "managers@example.com"], "escalated before the reminder"
    [queued] = store.search_ledger(run_id=run_id, action="approval.notifications_queued")
    assert {n["id"] for n in json.loads(queued.payload)["notifications"]} == {n.id for n in rows.values()}

    delivered = deliver_due(store)
    assert sorted(delivered) == sorted([rows["requested", "slack"].id, rows["requested", "email"].id])
    [message] = webhook.messages
    body = message["body"]
    assert message["headers"]["Idempotency-Key"] == rows["requested", "slack"].id
    assert body["metadata"]["event_payload"]["notification_id"] == rows["requested", "slack"].id
    blocks = {b["type"]: b for b in body["blocks"]}
    assert blocks["header"]["text"]["text"] == "Approval needed: scale_deployment"
    fields = " ".join(f["text"] for b in body["blocks"] for f in b.get("fields", []))
    assert "`scale_deployment`" in fields and "alice, oncall@example.com" in fields and "maker" in fields
    text = json.dumps(body)
    assert '\\"replicas\\": 12' in text and "web-app is hot" in text
    assert "sk-notifyTESTsecret123" not in text and "[REDACTED]" in text, "a secret in the reason is redacted"
    [button] = blocks["actions"]["elements"]
    link = button["url"]
    assert link == approval_url(appr.id) == f"{APP_URL}/approvals?request={appr.id}"
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == APP_URL and parts.path == "/approvals"
    assert service_approvals.get_approval(parse_qs(parts.query)["request"][0]).id == appr.id, "the link resolves"
    outbox = [m for m in store.outbox_list() if m.idempotency_key == f"notification:{rows['requested', 'email'].id}"]
    assert len(outbox) == 1 and link in outbox[0].body and outbox[0].to == "oncall@example.com"
    assert deliver_due(store) == [] and len(webhook.messages) == 1, "a delivered notification is not sent again"
    assert events(store, run_id) == [("notification.attempt", "requested", "slack", 1),
                                     ("notification.delivered", "requested", "slack", 1),
                                     ("notification.attempt", "requested", "email", 1),
                                     ("notification.delivered", "requested", "email", 1)] or \
        events(store, run_id) == [("notification.attempt", "requested", "email", 1),
                                  ("notification.delivered", "requested", "email", 1),
                                  ("notification.attempt", "requested", "slack", 1),
                                  ("notification.delivered", "requested", "slack", 1)]


def test_a_webhook_that_is_down_is_retried_with_backoff_and_delivered_once_it_is_up(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    run_id, appr = open_request(store)
    slack_row = by_kind(store, appr.id)["requested", "slack"]
    t0 = store.clock()
    assert deliver_due(store, now=t0) == [by_kind(store, appr.id)["requested", "email"].id], "only the mail went"
    row = store.notification(slack_row.id)
    assert (row.status, row.attempts, row.next_at) == ("retrying", 1, pytest.approx(t0 + 1, abs=0.5))
    assert "ConnectError" in row.last_error
    assert deliver_due(store, now=t0 + 0.2) == [], "not before its backoff"
    assert deliver_due(store, now=t0 + 1.5) == [] and store.notification(slack_row.id).attempts == 2
    assert store.notification(slack_row.id).next_at == pytest.approx(t0 + 1.5 + 2, abs=0.5), "the wait doubled"
    webhook.start()
    assert deliver_due(store, now=t0 + 4) == [slack_row.id]
    assert webhook.ids() == [slack_row.id]
    slack_events = [e for e in events(store, run_id) if e[2] == "slack"]
    assert slack_events == [("notification.attempt", "requested", "slack", 1),
                            ("notification.delivery_failed", "requested", "slack", 1),
                            ("notification.attempt", "requested", "slack", 2),
                            ("notification.delivery_failed", "requested", "slack", 2),
                            ("notification.attempt", "requested", "slack", 3),
                            ("notification.delivered", "requested", "slack", 3)]


def test_the_delivering_process_killed_mid_send_is_delivered_again_with_the_same_id(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    run_id, appr = open_request(store)
    slack_row = by_kind(store, appr.id)["requested", "slack"]
    webhook.hold_next = True
    webhook.start()
    worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert webhook.holding.wait(90), "the worker never sent the notification"
        row = store.notification(slack_row.id)
        assert (row.status, row.attempts) == ("sending", 1)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    webhook.release.set()
    assert slack_row.id not in deliver_due(store), "its lease has not run out: nobody sends it twice at once"
    assert len(webhook.messages) == 1
    later = store.clock() + 121  # AGENTOPS_NOTIFY_LEASE_SECONDS (120) on
    assert slack_row.id in deliver_due(store, now=later)
    assert webhook.ids() == [slack_row.id, slack_row.id] and webhook.repeats() == 1, "at least once, one repeat"
    assert [m["body"]["metadata"]["event_payload"]["notification_id"] for m in webhook.messages] == \
        [slack_row.id] * 2
    row = store.notification(slack_row.id)
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [e for e in events(store, run_id) if e[2] == "slack"] == [
        ("notification.attempt", "requested", "slack", 1),
        ("notification.delivery_uncertain", "requested", "slack", 1),
        ("notification.attempt", "requested", "slack", 2),
        ("notification.delivered", "requested", "slack", 2)]
    assert deliver_due(store, now=later + 10) == [] and len(webhook.messages) == 2


def test_email_notifications_arrive_over_smtp_with_a_stable_message_id(
        sqlite_project: Path, webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    webhook.start()
    with SMTPServer() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        _, appr = open_request(store)
        email_row = by_kind(store, appr.id)["requested", "email"]
        assert email_row.id in deliver_due(store)
        [message] = smtp.messages
        assert str(message["Message-ID"]) == mail.message_id(f"notification:{email_row.id}")
        assert message["To"] == "oncall@example.com" and "Approval needed: scale_deployment" in message["Subject"]
        text = message.get_content()
        assert approval_url(appr.id) in text and '"replicas": 12' in text and "sk-notifyTESTsecret123" not in text
        assert deliver_due(store) == [] and len(smtp.messages) == 1


def test_reminder_and_escalation_fire_at_their_database_time_and_expiry_still_fails_closed(
        project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, project, webhook)
    webhook.start()
    run_id, appr = open_request(store)
    created = appr.created_at
    deliver_due(store, now=created)
    assert len(webhook.messages) == 1
    assert deliver_due(store, now=created + 30 * 60 - 1) == [], "no escalation before 30 minutes"
    escalated = deliver_due(store, now=created + 30 * 60 + 1)
    rows = by_kind(store, appr.id)
    assert sorted(escalated) == sorted([rows["escalation", "slack"].id, rows["escalation", "email"].id])
    assert webhook.messages[-1]["body"]["blocks"][0]["text"]["text"] == \
        "Escalated: nobody has decided scale_deployment yet"
    assert [m.to for m in store.outbox_list() if "Escalated" in m.subject] == ["managers@example.com"]
    escalations = store.search_ledger(run_id=run_id, action="approval.escalated", ascending=True)
    assert len(escalations) == 2
    payload = json.loads(escalations[0].payload)
    assert payload["can_decide"] == ["carol"]
    assert payload["cannot_decide"] == {"viv": "role 'viewer'", "managers@example.com": "no account of that name"}
    assert deliver_due(store, now=appr.expires_at - 15 * 60 - 1) == [], "no reminder before 15 minutes to expiry"
    reminded = deliver_due(store, now=appr.expires_at - 15 * 60 + 1)
    assert sorted(reminded) == sorted([rows["reminder", "slack"].id, rows["reminder", "email"].id])
    assert webhook.messages[-1]["body"]["blocks"][0]["text"]["text"] == \
        "Reminder: approval still needed for scale_deployment"
    assert len(webhook.messages) == 3
    # nobody decided: expiry fails closed, exactly as without notifications
    [expired] = expire_due(store, now=appr.expires_at + 1)
    assert expired.id == appr.id and store.get_approval(appr.id).status == "expired"
    Worker(store, poll_seconds=0.01).run(burst=True)
    run = store.get_run(run_id)
    assert run.state == "COMPLETED" and serialization.loads(run.result) == {"decision": "expired"}
    assert store.due_notifications(appr.expires_at + HOUR) == []


def test_someone_of_the_escalation_group_decides_and_what_was_not_due_yet_is_skipped(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    webhook.start()
    run_id, appr = open_request(store)
    deliver_due(store, now=appr.created_at + 30 * 60 + 1)
    assert len(webhook.messages) == 2  # requested, escalated
    decision = decide(store, appr.id, "approve", user="carol")
    assert decision is not None and decision.decided_by == ["carol"]
    assert deliver_due(store, now=appr.expires_at - 60) == [], "the reminder of a decided request is not sent"
    rows = by_kind(store, appr.id)
    assert rows["reminder", "slack"].status == rows["reminder", "email"].status == "skipped"
    assert rows["reminder", "slack"].last_error == "the request is approved"
    assert ("notification.skipped", "reminder", "slack", 0) in events(store, run_id)
    assert len(webhook.messages) == 2
    Worker(store, poll_seconds=0.01).run(burst=True)
    assert serialization.loads(store.get_run(run_id).result) == {"decision": "approve"}


def test_a_webhook_host_not_on_the_allowlist_is_refused_recorded_and_never_called(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook, hosts='"hooks.slack.com"')
    webhook.start()
    run_id, appr = open_request(store)
    slack_row = by_kind(store, appr.id)["requested", "slack"]
    deliver_due(store)
    row = store.notification(slack_row.id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == (f"AGENTOPS_SLACK_WEBHOOK_URL names host '127.0.0.1:{webhook.port}', which is not in "
                              "the policy's notifications.webhook_hosts (hooks.slack.com)")
    assert webhook.messages == [] and webhook.other_paths == []
    refused = [e for e in events(store, run_id) if e[2] == "slack"]
    assert refused == [("notification.attempt", "requested", "slack", 1),
                       ("notification.refused", "requested", "slack", 1)]
    assert slack_row.id not in deliver_due(store, now=store.clock() + 20 * 60), "refused is never retried"
    assert webhook.messages == []
    shown = subprocess.run([sys.executable, "-m", "agentops.cli", "approvals", "notifications", appr.id[:8], "--json"],
                           env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    listed = {(n["kind"], n["channel"]): n for n in json.loads(shown.stdout)}
    assert listed["requested", "slack"]["status"] == "failed" and listed["requested", "slack"]["attempts"] == 1
    assert "not in the policy's notifications.webhook_hosts" in listed["requested", "slack"]["last_error"]
    assert listed["requested", "email"]["status"] == "delivered"
    assert listed["reminder", "slack"]["status"] == "queued"
    unknown = subprocess.run([sys.executable, "-m", "agentops.cli", "approvals", "notifications", "nosuchrequest"],
                             env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines() == [
        "error: no approval with id 'nosuchrequest'"] and "Traceback" not in unknown.stderr + unknown.stdout


def test_the_webhook_secret_is_in_no_table_no_event_and_no_output(
        sqlite_project: Path, webhook: WebhookServer, capfd: pytest.CaptureFixture[str]) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    open_request(store)
    t0 = store.clock()
    deliver_due(store, now=t0)  # down: failed attempts with their reasons
    webhook.start()
    deliver_due(store, now=t0 + 30 * 60 + 5)  # delivered, and the escalation
    assert len(webhook.messages) == 2
    env = {**os.environ}
    cli = subprocess.run([sys.executable, "-m", "agentops.cli", "audit", "export"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0 and "notification.delivered" in cli.stdout
    secret_path = webhook.path.rsplit("/", 1)[1]
    db_path = sqlite_project / ".." / "agentops.db"
    conn = sqlite3.connect(db_path.resolve())
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert "notification.delivery_failed" in dump and "notifications" in dump
    out = capfd.readouterr()
    for text in (dump, cli.stdout, cli.stderr, out.out, out.err):
        assert secret_path not in text and webhook.url not in text


def test_a_policy_with_notifications_that_cannot_work_is_refused_at_load_with_its_line(sqlite_project: Path) -> None:
    from agentops.governance.policy import load_policy

    copy_tools(sqlite_project)
    bad = {
        "escalate_to: [nobody-group!]": "bad.yaml:6: tools.scale_deployment.escalate_to.0: 'nobody-group!' is not "
                                        "an account name",
        "escalate_after: 30m": "an escalation needs both escalate_after (when) and escalate_to (who)",
        "remind_before: soon": "is not a duration",
    }
    for line, expected in bad.items():
        path = sqlite_project / "policies" / "bad.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"tools:\n  scale_deployment:\n    verdict: require_approval\n    notify: [email]\n"
                        f"    notify_to: [ops@example.com]\n    {line}\n")
        with pytest.raises(ConfigError, match=r"bad\.yaml:[0-9]+: ") as err:
            load_policy(path)
        assert expected in str(err.value)
    path.write_text("tools:\n  scale_deployment:\n    verdict: require_approval\n    notify: [email]\n"
                    "    notify_to: [alice]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:5: tools\.scale_deployment\.notify_to: the email channel needs"):
        load_policy(path)


def test_a_resolved_alert_is_shown_on_the_request_its_run_still_waits_for(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    from agentops.engine.project import load_project
    from agentops.service.alerts import AlertmanagerPayload, receive_alertmanager

    store = open_store()
    setup_people(store, sqlite_project, webhook)
    add_user(store, "am", "operator", "correct horse battery")
    (sqlite_project / "alerts.yaml").write_text(
        "alertmanager:\n  - match: {alertname: HighCPU}\n    flow: notified_scale\n"
        "    parameters: {name: $deployment, replicas: 12}\n")
    (sqlite_project / "policies" / "notify.yaml").write_text(
        (sqlite_project / "policies" / "notify.yaml").read_text().replace(
            "  start_flow:\n    verdict: allow\n",
            "  start_flow:\n    verdict: allow\n    constraints:\n      flow: {enum: [notified_scale]}\n"))
    load_project()

    def note(status: str) -> AlertmanagerPayload:
        common = {"alertname": "HighCPU", "deployment": "web-app"}
        return AlertmanagerPayload.model_validate({
            "version": "4", "groupKey": '{}:{alertname="HighCPU"}', "status": status, "commonLabels": common,
            "alerts": [{"status": status, "labels": common, "fingerprint": "f00d"}]})

    started = receive_alertmanager(note("firing"), user="am")
    assert started.outcome == "started"
    Worker(store, poll_seconds=0.01).run(burst=True)
    [appr] = store.list_approvals(run_id=started.run_id)
    assert views.approval_view(appr).alert_resolved_at is None
    before = time.time()
    resolved = receive_alertmanager(note("resolved"), user="am")
    assert resolved.outcome == "resolved" and appr.id in resolved.reason
    view = views.approval_view(store.get_approval(appr.id))
    assert view.alert_resolved_at is not None and view.alert_resolved_at >= before
    [event] = store.search_ledger(run_id=started.run_id, action="approval.alert_resolved")
    assert event.approval_id == appr.id and json.loads(event.payload)["labels"]["deployment"] == "web-app"
    assert store.get_approval(appr.id).status == "pending", "a resolution decides nothing"


def test_someone_who_writes_the_database_cannot_redirect_or_forge_a_notification(
        sqlite_project: Path, webhook: WebhookServer) -> None:
    store = open_store()
    setup_people(store, sqlite_project, webhook)
    webhook.start()
    run_id, appr = open_request(store)
    forged_run, forged = open_request(store)
    rows, forged_rows = by_kind(store, appr.id), by_kind(store, forged.id)
    conn = sqlite3.connect((sqlite_project / ".." / "agentops.db").resolve())
    with conn:
        conn.execute("UPDATE notifications SET recipients = ? WHERE id = ?",
                     ('["alice", "attacker@evil.test"]', rows["requested", "email"].id))
        conn.execute("UPDATE approvals SET args = ? WHERE id = ?", ('{"name": "web-app", "replicas": 2}', forged.id))
    conn.close()
    deliver_due(store)
    mail_row = store.notification(rows["requested", "email"].id)
    assert (mail_row.status, mail_row.last_error) == ("failed", "recipient 'attacker@evil.test' is not named by the "
                                                      "policy rule for scale_deployment (notify_to, escalate_to "
                                                      "and their groups)")
    assert not [m for m in store.outbox_list() if "attacker" in m.to]
    assert ("notification.refused", "requested", "email", 1) in events(store, run_id)
    for channel in ("slack", "email"):
        row = store.notification(forged_rows["requested", channel].id)
        assert row.status == "failed" and "no notification of it is sent" in (row.last_error or "")
    assert webhook.ids() == [rows["requested", "slack"].id], "only the untouched request was announced"
    assert [e[0] for e in events(store, forged_run)].count("notification.refused") == 2


def test_deliverers_racing_send_each_notification_once(sqlite_project: Path, webhook: WebhookServer) -> None:
    import threading

    from agentops.db import Store

    store = open_store()
    setup_people(store, sqlite_project, webhook)
    webhook.start()
    requests = [open_request(store)[1] for _ in range(5)]
    due = {n.id for a in requests for n in store.notifications_for(a.id) if n.kind == "requested"}
    assert len(due) == 10
    stores = [Store(store.url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    delivered: list[str] = []

    def deliverer(own: Store) -> None:
        barrier.wait()
        delivered.extend(deliver_due(own))

    threads = [threading.Thread(target=deliverer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(delivered) == sorted(due)
    assert sorted(webhook.ids()) == sorted(n for n in due if store.notification(n).channel == "slack")
    attempts = store.search_ledger(action="notification.attempt", limit=1000)
    assert sorted(json.loads(e.payload)["notification_id"] for e in attempts) == sorted(due), "one attempt each"
    for s in stores:
        s.engine.dispose()
