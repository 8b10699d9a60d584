"""The audit ledger is hash-chained: editing, inserting, deleting or reordering a row is detected."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

from agentops.core.ledger import Event, verify_rows
from agentops.core.redaction import REDACTED, reset_redactor


def fill(store, n: int = 10) -> None:
    store.append_events([Event(actor="user:alice", action="test.event", payload={"i": i}) for i in range(n)])


def tamper(store, sql: str, **params) -> None:
    """What an attacker with write access to the table would do."""
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_intact_chain_verifies_with_its_count(store) -> None:
    fill(store)
    report = verify_rows(store.iter_ledger(chunk=3))
    assert report.ok and report.count == 10 and report.line() == "OK: 10 events, chain intact"


def test_an_edited_payload_is_named(store) -> None:
    fill(store)
    tamper(store, "UPDATE ledger SET payload = :p WHERE seq = 4", p='{"i":999}')
    report = verify_rows(store.iter_ledger())
    assert not report.ok and report.first_bad_seq == 4 and "edited" in report.problem


def test_an_edited_actor_with_a_recomputed_hash_breaks_the_next_link(store) -> None:
    from agentops.core.ledger import event_hash

    fill(store)
    row = store.search_ledger(limit=100, ascending=True)[5]
    forged = event_hash(row.prev_hash, row.ts, "user:mallory", row.action, row.run_id, row.step_no,
                        row.approval_id, row.payload, row.policy_hash)
    tamper(store, "UPDATE ledger SET actor = 'user:mallory', hash = :h WHERE seq = :s", h=forged, s=row.seq)
    report = verify_rows(store.iter_ledger())
    assert not report.ok and report.first_bad_seq == row.seq + 1


def test_a_deleted_row_is_named(store) -> None:
    fill(store)
    tamper(store, "DELETE FROM ledger WHERE seq = 6")
    report = verify_rows(store.iter_ledger())
    assert not report.ok and report.first_bad_seq == 7 and "rows 6..6 are missing" in report.problem


def test_an_inserted_row_is_named(store) -> None:
    fill(store, 3)
    tamper(store, "INSERT INTO ledger (seq, ts, actor, action, payload, prev_hash, hash) "
                  "VALUES (100, 1.0, 'user:mallory', 'approval.decided', '{}', :p, :h)", p="0" * 64, h="f" * 64)
    report = verify_rows(store.iter_ledger())
    assert not report.ok and report.first_bad_seq == 100


def test_reordered_rows_are_detected(store) -> None:
    fill(store, 5)
    rows = {r.seq: r for r in store.search_ledger(limit=10)}
    tamper(store, "UPDATE ledger SET payload = :p, hash = :h, prev_hash = :ph WHERE seq = 2",
           p=rows[3].payload, h=rows[3].hash, ph=rows[3].prev_hash)
    assert verify_rows(store.iter_ledger()).first_bad_seq == 2


def test_secrets_are_redacted_by_key_and_by_value(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-very-secret")
    reset_redactor()
    store.append_events([Event(actor="system", action="test.secret", payload={
        "api_key": "abc123456", "note": "login with hunter2-very-secret please",
        "headers": {"Authorization": "Bearer abcdefghijkl"}, "model": "sk-live-0123456789abcdef"})])
    stored = json.loads(store.search_ledger(action="test.secret")[0].payload)
    assert stored == {"api_key": REDACTED, "note": f"login with {REDACTED} please",
                      "headers": {"Authorization": REDACTED}, "model": REDACTED}
    assert "hunter2" not in json.dumps(stored)
    os.environ.pop("SMTP_PASSWORD", None)
    reset_redactor()
