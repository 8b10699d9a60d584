"""Email is never silently lost: each delivery attempt and its outcome is recorded, an undelivered mail is sent
again when its step runs again, always with the same Message-ID, and a delivered one never is.

Against a real aiosmtpd server on loopback (tests/fakes/smtp.py) that can hold a session, drop the connection
after DATA, refuse recipients, or not be there at all; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentops.backends import mail
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.engine.registry import find_flow
from agentops.engine.runner import create_run
from agentops.engine.toolkit import ToolCallInfo, current_tool_call, load_tools
from agentops.engine.worker import Worker
from agentops.settings import reset_settings
from tests.conftest import ROOT
from tests.fakes.smtp import SMTPServer

PAGE_FLOW = '''
from agentops import flow
from agentops.agents import Agent


@flow
def page_oncall() -> dict:
    outcome = Agent(name="pager", prompt="incident", tools=["send_email"]).use(
        "send_email", to=["oncall@example.com"], subject="Disk full on db-1", body="92% used")
    return {"status": outcome.status, "content": outcome.content}
'''


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    """A running server, the project pointed at it, no wait between attempts."""
    with SMTPServer() as server:
        point_at(server, monkeypatch)
        yield server


def point_at(server: SMTPServer, monkeypatch: pytest.MonkeyPatch, attempts: int = 3) -> None:
    monkeypatch.setenv("AGENTOPS_SMTP_URL", server.url)
    monkeypatch.setenv("AGENTOPS_SMTP_RETRY_SECONDS", "0")
    monkeypatch.setenv("AGENTOPS_SMTP_ATTEMPTS", str(attempts))
    reset_settings()


def send(key: str, to: list[str] | None = None) -> dict[str, Any]:
    """The send_email tool as the step with this idempotency key runs it (again, if it ran before)."""
    tool = load_tools(Path(os.environ["AGENTOPS_PROJECT_DIR"]))["send_email"]
    run_id, step_no = key.split(":")
    token = current_tool_call.set(ToolCallInfo(run_id, int(step_no), key))
    try:
        return tool.invoke({"to": to or ["oncall@example.com"], "subject": "Disk full", "body": "92% used"})
    finally:
        current_tool_call.reset(token)


def outbox_row(key: str) -> Any:
    [row] = [m for m in open_store().outbox_list() if m.idempotency_key == key]
    return row


def email_events(run_id: str) -> list[tuple[str, int | None]]:
    """(action, attempt) of each email event of a run, in ledger order."""
    events = open_store().search_ledger(run_id=run_id, action="email.", ascending=True)
    return [(e.action, json.loads(e.payload).get("attempt")) for e in events]


def test_a_worker_killed_mid_delivery_resumes_and_the_mail_arrives_once_with_its_message_id(
        ops_db_project: Path, smtp: SMTPServer) -> None:
    (ops_db_project / "flows" / "page_oncall.py").write_text(PAGE_FLOW)
    load_project()
    store = open_store()
    run_id = create_run(find_flow("page_oncall"), {}, store=store)
    smtp.hold_next_mail = True
    worker = subprocess.Popen([sys.executable, "-m", "agentops.cli", "worker"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert smtp.holding.wait(90), "the worker never reached the SMTP server"
        [held] = store.outbox_list()
        assert (held.status, held.attempts) == ("sending", 1)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    smtp.release.set()
    assert smtp.messages == [], "the killed attempt delivered nothing"

    rescuer = Worker(store, stale_after=0.5, poll_seconds=0.01)
    deadline = time.time() + 30
    while rescuer.recover_crashed() != [run_id]:
        assert time.time() < deadline, "the killed worker's run was never recovered"
        time.sleep(0.1)
    rescuer.run(burst=True)

    run = store.get_run(run_id)
    assert run.state == "COMPLETED" and json.loads(run.result or "{}")["status"] == "ok"
    row = outbox_row(store.outbox_list()[0].idempotency_key)
    assert row.idempotency_key.startswith(f"{run_id}:")
    assert (row.status, row.attempts) == ("delivered", 2) and row.server_reply.startswith("250 ")
    assert smtp.message_ids() == [mail.message_id(row.idempotency_key)] == [row.message_id]
    assert email_events(run_id) == [("email.queued", None), ("email.delivery_attempt", 1),
                                    ("email.delivery_uncertain", 1), ("email.delivery_attempt", 2),
                                    ("email.delivered", 2)]
    assert send(row.idempotency_key)["status"] == "already sent"
    assert len(smtp.messages) == 1 and smtp.mail_commands == 2, "a delivered mail is never sent again"


def test_a_step_stopped_after_writing_its_outbox_row_delivers_it_when_it_runs_again(ops_db_project: Path,
                                                                                     smtp: SMTPServer) -> None:
    row, created = mail.queue({"idempotency_key": "run5:4", "sender": "agentops@example.com",
                               "to": "oncall@example.com", "subject": "Disk full", "body": "92% used",
                               "attachments": None, "run_id": "run5", "created_at": time.time()}, smtp=True)
    assert created and row["status"] == "queued" and smtp.messages == []
    result = send("run5:4")
    assert result["status"] == "sent" and result["message_id"] == row["message_id"]
    assert smtp.message_ids() == [row["message_id"]]
    assert email_events("run5") == [("email.queued", None), ("email.delivery_attempt", 1), ("email.delivered", 1)]


def test_a_server_that_is_down_is_failed_and_retried_never_already_sent(ops_db_project: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server = SMTPServer()  # its port is reserved, nothing listens yet
    point_at(server, monkeypatch, attempts=2)
    for resumed in range(2):
        with pytest.raises(mail.EmailNotDelivered, match=r"not delivered yet \(failed after attempt"):
            send("run6:2")
        row = outbox_row("run6:2")
        assert (row.status, row.retryable, row.attempts) == ("failed", True, 2 * (resumed + 1))
        assert "Connection refused" in row.failure and row.server_reply is None
    with server:
        result = send("run6:2")
        again = send("run6:2")
    assert result["status"] == "sent" and again["status"] == "already sent"
    assert server.message_ids() == [mail.message_id("run6:2")]
    failures = [("email.delivery_attempt", n) for n in range(1, 5)]
    assert [e for e in email_events("run6") if e[0] != "email.delivery_failed"] == [
        ("email.queued", None), *failures, ("email.delivery_attempt", 5), ("email.delivered", 5)]
    assert email_events("run6").count(("email.delivery_failed", 4)) == 1


def test_a_connection_dropped_after_data_is_uncertain_and_resent_with_the_same_message_id(
        ops_db_project: Path, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    smtp.drop_after_data = 1
    result = send("run7:3")
    assert result["status"] == "sent"
    assert smtp.message_ids() == [mail.message_id("run7:3")] * 2, "it arrived twice, both with the one Message-ID"
    assert email_events("run7") == [("email.queued", None), ("email.delivery_attempt", 1),
                                    ("email.delivery_uncertain", 1), ("email.delivery_attempt", 2),
                                    ("email.delivered", 2)]

    point_at(smtp, monkeypatch, attempts=1)
    smtp.drop_after_data = 1
    with pytest.raises(mail.EmailNotDelivered, match="uncertain after attempt 1"):
        send("run8:3")
    row = outbox_row("run8:3")
    assert (row.status, row.retryable) == ("uncertain", True) and "may have been delivered" in row.failure
    assert send("run8:3")["status"] == "sent", "the step run again sends it again"
    assert smtp.message_ids()[2:] == [mail.message_id("run8:3")] * 2
    assert outbox_row("run8:3").status == "delivered"


def test_a_permanent_refusal_is_failed_for_good_and_a_temporary_one_is_tried_again(ops_db_project: Path,
                                                                                    smtp: SMTPServer) -> None:
    smtp.refuse = {"gone@example.com": "550 5.1.1 no such user", "full@example.com": "452 4.2.2 mailbox full"}
    with pytest.raises(mail.EmailNotDelivered, match="refused and is not sent again: RCPT TO"):
        send("run9:1", to=["gone@example.com"])
    seen = smtp.mail_commands
    with pytest.raises(mail.EmailNotDelivered, match="refused and is not sent again"):
        send("run9:1", to=["gone@example.com"])
    assert smtp.mail_commands == seen == 1, "a mail refused for good is not tried again"
    assert (outbox_row("run9:1").status, outbox_row("run9:1").retryable) == ("failed", False)

    with pytest.raises(mail.EmailNotDelivered, match="not delivered yet"):
        send("run9:2", to=["full@example.com"])
    assert outbox_row("run9:2").attempts == 3
    smtp.refuse = {}
    assert send("run9:2", to=["full@example.com"])["status"] == "sent"
    assert smtp.message_ids() == [mail.message_id("run9:2")]


def test_a_partly_refused_mail_is_delivered_and_names_who_was_refused(ops_db_project: Path,
                                                                      smtp: SMTPServer) -> None:
    smtp.refuse = {"gone@example.com": "550 5.1.1 no such user"}
    assert send("run10:1", to=["oncall@example.com", "gone@example.com"])["status"] == "sent"
    [delivered] = open_store().search_ledger(run_id="run10", action="email.delivered")
    assert json.loads(delivered.payload)["refused"] == {"gone@example.com": "550 5.1.1 no such user"}
    assert len(smtp.messages) == 1


def test_a_mail_whose_delivery_failed_is_an_error_for_the_agent_not_a_sent_mail(
        ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    point_at(SMTPServer(), monkeypatch, attempts=1)
    (ops_db_project / "flows" / "page_oncall.py").write_text(PAGE_FLOW)
    load_project()
    store = open_store()
    run_id = create_run(find_flow("page_oncall"), {}, store=store)
    Worker(store, poll_seconds=0.01).run(burst=True)
    result = json.loads(store.get_run(run_id).result or "{}")
    assert result["status"] == "error" and "EmailNotDelivered" in result["content"]
    assert "already sent" not in result["content"] and store.outbox_list()[0].status == "failed"


def test_message_ids_are_stable_valid_and_distinct_per_step() -> None:
    assert mail.message_id("abc123:4") == mail.message_id("abc123:4") == "<abc123.4@agentops>"
    assert mail.message_id("abc123:4") != mail.message_id("abc123:5")
    hostile = mail.message_id("x>\r\nBcc: evil@evil.com")
    assert hostile.startswith("<") and hostile.endswith("@agentops>")
    assert "\n" not in hostile and ">" not in hostile[:-1] and "evil" not in hostile


def test_mail_written_before_the_delivery_states_is_delivered_after_the_upgrade_and_not_sent_again(
        project: Path, db_url: str, smtp: SMTPServer) -> None:
    import shutil

    import sqlalchemy as sa
    from alembic import command

    from agentops.db import Store, close_stores
    from agentops.db.migrate import alembic_config

    shutil.copytree(ROOT / "tools", project / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    old = Store(db_url)
    config = alembic_config(old)
    with old.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005_rate_use_id")
    with old.write() as conn:
        conn.execute(sa.text('INSERT INTO outbox (idempotency_key, sender, "to", subject, body, run_id, created_at) '
                             "VALUES ('run11:2', 'agentops@example.com', 'oncall@example.com', 'old', 'b', "
                             "'run11', 1)"))
    old.engine.dispose()
    close_stores()
    row = outbox_row("run11:2")
    assert (row.status, row.attempts, row.retryable) == ("delivered", 0, False)
    assert send("run11:2")["status"] == "already sent" and smtp.messages == []


def test_one_attempt_at_a_time_and_a_delivery_is_never_overwritten(store) -> None:  # type: ignore[no-untyped-def]
    import threading

    row, _ = store.outbox_add({"idempotency_key": "run12:1", "sender": "agentops@example.com", "to": "a@example.com",
                               "subject": "s", "body": "b", "created_at": 1.0, "status": "queued"})
    start = threading.Barrier(8)
    taken: list[bool] = []

    def take() -> None:
        start.wait()
        taken.append(store.outbox_start_attempt(row["id"], 0, 2.0, []))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == [False] * 7 + [True], "executions that read the same row take one attempt between them"

    assert store.outbox_start_attempt(row["id"], 1, 3.0, []), "a takeover starts attempt 2 over a stalled attempt 1"
    stale = store.outbox_finish_attempt(row["id"], 1, {"status": "failed", "failure": "late", "retryable": True}, [])
    assert (stale["status"], stale["attempts"]) == ("sending", 2), "a stale attempt's failure changes nothing"
    done = store.outbox_finish_attempt(row["id"], 1, {"status": "delivered", "server_reply": "250 late OK"}, [])
    assert done["status"] == "delivered", "a delivery is recorded from whichever attempt made it"
    after = store.outbox_finish_attempt(row["id"], 2, {"status": "uncertain", "failure": "lost", "retryable": True}, [])
    assert (after["status"], after["server_reply"]) == ("delivered", "250 late OK")
    assert not store.outbox_start_attempt(row["id"], 2, 4.0, []), "a delivered mail takes no attempt"
