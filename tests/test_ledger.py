"""The audit ledger proves what happened, including what is missing.

Every test plays a person with write access to the database (SQL straight at the tables, on SQLite and
PostgreSQL) and checks that `audit_verify` names what they did: the chain catches edits, inserts, deletions
and reorders; signed checkpoints kept outside the database catch a cut tail, an emptied table and a
recomputed chain; the high-water mark catches reused or skipped numbers; the digests in the chain catch
edited run results, run parameters and step outputs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from agentops import flow, request_approval, service, task
from agentops.core.ledger import GENESIS, Anchor, Event, event_hash, verify_rows
from agentops.core.redaction import REDACTED, reset_redactor
from agentops.engine.runner import CREATED_EPOCH, create_run, execute_run
from agentops.errors import AgentOpsError, LeaseLost, LedgerError


def fill(store, n: int = 10) -> None:
    store.append_events([Event(actor="user:alice", action="test.event", payload={"i": i}) for i in range(n)])


def tamper(store, sql: str, **params) -> None:
    """What an attacker with write access to the tables would do."""
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def rows(store) -> list[dict]:
    with store.engine.begin() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM ledger ORDER BY seq"))]


def recompute(store, *, edit_seq: int | None = None, payload: str | None = None) -> None:
    """The careful attacker: edit a row (optionally), then recompute every hash after it and the high-water mark,
    so the chain links again."""
    prev = GENESIS
    with store.engine.begin() as conn:
        for row in [dict(r._mapping) for r in conn.execute(text("SELECT * FROM ledger ORDER BY seq"))]:
            if row["seq"] == edit_seq:
                row["payload"] = payload
            digest = event_hash(prev, row["ts"], row["actor"], row["action"], row["run_id"], row["step_no"],
                                row["approval_id"], row["payload"], row["policy_hash"])
            conn.execute(text("UPDATE ledger SET payload = :p, prev_hash = :ph, hash = :h WHERE seq = :s"),
                         {"p": row["payload"], "ph": prev, "h": digest, "s": row["seq"]})
            prev = digest
            last = row["seq"]
        conn.execute(text("UPDATE ledger_head SET seq = :s, hash = :h"), {"s": last, "h": prev})


def forge_append(store, *, move_mark: bool, link: bool = True) -> int:
    """Insert an event with a correct hash after the last one; returns its seq."""
    last = rows(store)[-1]
    prev = last["hash"] if link else "f" * 64
    seq, ts, payload = last["seq"] + 1, last["ts"] + 1, '{"kind":"approve"}'
    digest = event_hash(prev, ts, "user:mallory", "approval.decided", None, None, None, payload, None)
    tamper(store, "INSERT INTO ledger (seq, ts, actor, action, payload, prev_hash, hash) "
                  "VALUES (:s, :ts, 'user:mallory', 'approval.decided', :p, :ph, :h)",
           s=seq, ts=ts, p=payload, ph=prev, h=digest)
    if move_mark:
        tamper(store, "UPDATE ledger_head SET seq = :s, hash = :h", s=seq, h=digest)
    return seq


# -- the chain ----------------------------------------------------------------------------------------------


def test_intact_chain_verifies_with_its_count(store) -> None:
    fill(store)
    report = verify_rows(store.iter_ledger(chunk=3), head=store.ledger_head())
    assert report.ok and report.count == 10 and report.latest_checkpoint is None and report.uncovered == 10
    assert report.line() == "OK: 10 events, chain intact; no signed checkpoint yet (a cut tail cannot be detected)"


def test_an_edited_payload_is_named(store) -> None:
    fill(store)
    tamper(store, "UPDATE ledger SET payload = :p WHERE seq = 4", p='{"i":999}')
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 4 and "edited" in report.problem


def test_an_edited_actor_with_a_recomputed_hash_breaks_the_next_link(store) -> None:
    fill(store)
    row = store.search_ledger(limit=100, ascending=True)[5]
    forged = event_hash(row.prev_hash, row.ts, "user:mallory", row.action, row.run_id, row.step_no,
                        row.approval_id, row.payload, row.policy_hash)
    tamper(store, "UPDATE ledger SET actor = 'user:mallory', hash = :h WHERE seq = :s", h=forged, s=row.seq)
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == row.seq + 1


def test_a_deleted_row_is_named(store) -> None:
    fill(store)
    tamper(store, "DELETE FROM ledger WHERE seq = 6")
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 7 and "rows 6..6 are missing" in report.problem
    assert report.missing == (6, 6)


def test_an_inserted_row_is_named(store) -> None:
    fill(store, 3)
    tamper(store, "INSERT INTO ledger (seq, ts, actor, action, payload, prev_hash, hash) "
                  "VALUES (100, 1.0, 'user:mallory', 'approval.decided', '{}', :p, :h)", p="0" * 64, h="f" * 64)
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 100


def test_reordered_rows_are_detected(store) -> None:
    fill(store, 5)
    tamper(store, "UPDATE ledger SET seq = -2 WHERE seq = 2")
    tamper(store, "UPDATE ledger SET seq = 2 WHERE seq = 3")
    tamper(store, "UPDATE ledger SET seq = 3 WHERE seq = -2")
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 2 and "prev_hash" in report.problem


# -- checkpoints: what a chain alone cannot show -------------------------------------------------------------


def test_a_cut_tail_is_named_against_the_checkpoint(store) -> None:
    fill(store, 10)
    service.audit_checkpoint()
    tamper(store, "DELETE FROM ledger WHERE seq > 7")
    tamper(store, "UPDATE ledger_head SET seq = 7, hash = (SELECT hash FROM ledger WHERE seq = 7)")
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 8 and report.missing == (8, 10)
    assert "the tail was cut off" in report.problem


def test_an_emptied_ledger_is_detected_even_with_its_database_traces_wiped(store) -> None:
    fill(store, 10)
    service.audit_checkpoint()
    tamper(store, "DELETE FROM ledger")
    tamper(store, "DELETE FROM ledger_checkpoints")
    tamper(store, "UPDATE ledger_head SET seq = 0, hash = :g", g=GENESIS)
    report = service.audit_verify()
    assert not report.ok and report.missing == (1, 10) and "the ledger is empty" in report.problem


def test_a_recomputed_chain_is_detected_and_the_rewritten_range_named(store) -> None:
    fill(store, 10)
    service.audit_checkpoint()
    fill(store, 5)
    recompute(store, edit_seq=3, payload='{"i":"forged"}')
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 10
    assert "rewritten and recomputed: the first rewritten row lies between seq 1 and this one" in report.problem


def test_a_row_deleted_before_a_checkpoint_and_the_chain_relinked_is_detected(store) -> None:
    fill(store, 10)
    service.audit_checkpoint()
    tamper(store, "DELETE FROM ledger WHERE seq = 4")
    recompute(store)
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 10 and "rewritten" in report.problem


def test_a_row_deleted_after_the_checkpoint_and_relinked_leaves_a_missing_number(store) -> None:
    fill(store, 5)
    service.audit_checkpoint()
    fill(store, 5)
    tamper(store, "DELETE FROM ledger WHERE seq = 7")
    recompute(store)
    report = service.audit_verify()
    assert not report.ok and report.missing == (7, 7) and "sequence numbers 7..7 are missing" in report.problem


def test_a_forged_append_is_caught_unless_it_links_and_moves_the_mark(store) -> None:
    fill(store, 5)
    service.audit_checkpoint()
    unlinked = forge_append(store, move_mark=True, link=False)
    assert service.audit_verify().first_bad_seq == unlinked
    tamper(store, "DELETE FROM ledger WHERE seq = :s", s=unlinked)
    tamper(store, "UPDATE ledger_head SET seq = 5, hash = (SELECT hash FROM ledger WHERE seq = 5)")

    behind_the_mark = forge_append(store, move_mark=False)
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == behind_the_mark and "appended outside agentops" in report.problem

    tamper(store, "UPDATE ledger_head SET seq = :s, hash = (SELECT hash FROM ledger WHERE seq = :s)",
           s=behind_the_mark)
    report = service.audit_verify()  # the limit the README states: after the latest checkpoint, the chain only
    assert report.ok and report.uncovered == 1 and report.latest_checkpoint.seq == 5


def test_a_forged_event_with_an_unreadable_digest_is_named_not_a_crash(store) -> None:
    fill(store, 2)
    last = rows(store)[-1]
    payload = '{"output_digest":"not-hex","state":"COMPLETED"}'
    digest = event_hash(last["hash"], 5.0, "system:engine", "step.state", "r1", 1, None, payload, None)
    tamper(store, "INSERT INTO ledger (seq, ts, actor, action, run_id, step_no, payload, prev_hash, hash) "
                  "VALUES (3, 5.0, 'system:engine', 'step.state', 'r1', 1, :p, :ph, :h)",
           p=payload, ph=last["hash"], h=digest)
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 3 and "the event was forged" in report.problem


def test_sequence_numbers_are_never_reused_after_a_cut_tail(store) -> None:
    fill(store, 10)
    tamper(store, "DELETE FROM ledger WHERE seq > 7")
    fill(store, 1)
    assert [r["seq"] for r in rows(store)][-2:] == [7, 11]
    report = service.audit_verify()
    assert not report.ok and report.first_bad_seq == 11 and report.missing == (8, 10)


def test_a_rolled_back_append_leaves_no_gap(store) -> None:
    fill(store, 3)
    with pytest.raises(RuntimeError), store._write_sql() as tx:
        store._chain(tx, [Event(actor="system", action="test.lost")])
        raise RuntimeError("the state change failed after its event was chained")
    fill(store, 2)
    assert [r["seq"] for r in rows(store)] == [1, 2, 3, 4, 5]
    assert service.audit_verify().ok


def test_appends_refuse_to_run_without_the_high_water_mark(store) -> None:
    fill(store, 2)
    tamper(store, "DELETE FROM ledger_head")
    with pytest.raises(LedgerError, match="high-water mark"):
        fill(store, 1)
    report = service.audit_verify()
    assert not report.ok and "high-water mark" in report.problem


def test_no_state_change_is_written_without_the_high_water_mark(store) -> None:
    """A run's creation, a step's record and a run's end each write their rows and events together (on PostgreSQL
    as one statement): with the mark gone each is refused whole, and nothing of it is left behind."""
    run_id = create_run(ledger_flow, {"n": 1}, queue=False, store=store)
    tamper(store, "DELETE FROM ledger_head")
    with pytest.raises(LedgerError, match="high-water mark"):
        create_run(ledger_flow, {"n": 2}, store=store)
    with pytest.raises(LedgerError, match="high-water mark"):
        store.record_step({"run_id": run_id, "step_no": 1, "name": "ledger_pick", "state": "COMPLETED"},
                          [Event(actor="engine", action="step.state", run_id=run_id, step_no=1)], exists=False,
                          epoch=CREATED_EPOCH, logs=[{"run_id": run_id, "step_no": None, "ts": 1.0, "level": "INFO",
                                                      "message": "lost with its step"}])
    with pytest.raises(LedgerError, match="high-water mark"):
        store.set_run_state(run_id, "CANCELLED", [Event(actor="engine", action="run.state", run_id=run_id)])
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.get_run(run_id).state == "RUNNING"
    assert store.steps_for_run(run_id) == [] and store.logs_for_run(run_id) == []


def test_a_step_and_its_log_lines_are_written_together_and_fenced(store) -> None:
    run_id = create_run(ledger_flow, {"n": 1}, queue=False, store=store)
    lines = [{"run_id": run_id, "step_no": None, "ts": 1.5, "level": "INFO", "message": "100% done: 'quoted'"},
             {"run_id": run_id, "step_no": 1, "ts": 2.5, "level": "WARNING", "message": "second"}]
    step = {"run_id": run_id, "step_no": 1, "name": "ledger_pick", "state": "COMPLETED"}
    with pytest.raises(LeaseLost):
        store.record_step(step, [Event(actor="engine", action="step.state", run_id=run_id, step_no=1)],
                          exists=False, epoch=CREATED_EPOCH + 1, logs=lines)
    assert store.steps_for_run(run_id) == [] and store.logs_for_run(run_id) == []
    store.record_step(step, [Event(actor="engine", action="step.state", run_id=run_id, step_no=1)], exists=False,
                      epoch=CREATED_EPOCH, logs=lines)
    assert [(log.step_no, log.ts, log.message) for log in store.logs_for_run(run_id)] == [
        (None, 1.5, "100% done: 'quoted'"), (1, 2.5, "second")]
    assert [s.state for s in store.steps_for_run(run_id)] == ["COMPLETED"]
    assert service.audit_verify().ok


def test_numbers_missing_before_a_checkpoint_are_vouched_for_by_its_count() -> None:
    """A ledger written before the high-water mark may have gaps (rolled-back appends on PostgreSQL); a checkpoint
    signed over them counts the rows that were there, so the gaps are accepted as they were signed."""
    prev, chain_rows = GENESIS, []
    for seq in (1, 2, 5, 6):
        digest = event_hash(prev, float(seq), "a", "b", None, None, None, "{}", None)
        chain_rows.append((seq, float(seq), "a", "b", None, None, None, "{}", None, prev, digest))
        prev = digest
    signed = Anchor(6, prev, 4)
    assert verify_rows(iter(chain_rows), checkpoints=[signed]).ok
    miscounted = verify_rows(iter(chain_rows), checkpoints=[Anchor(6, prev, 6)])
    assert not miscounted.ok and "counts 6 events up to here, the ledger has 4" in miscounted.problem
    assert verify_rows(iter(chain_rows)).missing == (3, 4)


# -- the checkpoints themselves ------------------------------------------------------------------------------


def checkpoint_file(project: Path) -> Path:
    return project / ".agentops" / "checkpoints" / "checkpoints.jsonl"


def test_a_tampered_checkpoint_file_is_named(store, project: Path) -> None:
    fill(store, 4)
    service.audit_checkpoint()
    path = checkpoint_file(project)
    line = json.loads(path.read_text())
    path.write_text(json.dumps({**line, "count": 3}) + "\n")
    report = service.audit_verify()
    assert not report.ok and "checkpoints.jsonl:1: checkpoint of seq 4 has a bad signature" in report.problem

    path.write_text(path.read_text()[:40] + "\n")
    report = service.audit_verify()
    assert not report.ok and "checkpoints.jsonl:1: not JSON" in report.problem


def test_a_checkpoint_signed_with_another_key_is_refused(store, project: Path, tmp_path: Path) -> None:
    from agentops.core import checkpoints

    fill(store, 4)
    other = checkpoints.create_private_key(tmp_path / "other.pem")
    forged = checkpoints.sign(other, seq=4, hash=rows(store)[-1]["hash"], count=4, ts=1.0)
    checkpoint_file(project).parent.mkdir(parents=True, exist_ok=True)
    checkpoints.append_line(checkpoint_file(project), forged)
    service.audit_checkpoint()  # creates this project's own key
    report = service.audit_verify()
    assert not report.ok and "forged, or signed by another key" in report.problem


def test_the_database_copy_of_a_checkpoint_still_counts_when_the_file_is_cut(store, project: Path) -> None:
    fill(store, 6)
    service.audit_checkpoint()
    checkpoint_file(project).write_text("")
    tamper(store, "DELETE FROM ledger WHERE seq > 3")
    assert service.audit_verify().missing == (4, 6)


def test_the_signing_key_is_private_and_a_readable_one_is_refused(store, project: Path) -> None:
    fill(store, 2)
    service.audit_checkpoint()
    key = project / ".agentops" / "ledger-signing-key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o640)
    with pytest.raises(AgentOpsError, match="is open to other users \\(mode 0640\\): chmod 600"):
        service.audit_checkpoint()


def test_no_checkpoint_is_signed_over_a_chain_that_does_not_verify(store, project: Path) -> None:
    fill(store, 5)
    service.audit_checkpoint()
    fill(store, 5)
    tamper(store, "UPDATE ledger SET payload = '{}' WHERE seq = 8")
    with pytest.raises(LedgerError, match="refusing to sign a checkpoint: BROKEN at event seq=8"):
        service.audit_checkpoint()
    recompute(store, edit_seq=2, payload="{}")  # nor over one recomputed behind the last checkpoint
    with pytest.raises(LedgerError, match="refusing to sign a checkpoint: event seq 5 no longer matches"):
        service.audit_checkpoint()
    assert len(checkpoint_file(project).read_text().splitlines()) == 1


def test_workers_sign_checkpoints_every_n_events(store, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.service.audit import Checkpointer
    from agentops.settings import reset_settings

    monkeypatch.setenv("AGENTOPS_CHECKPOINT_EVERY_EVENTS", "5")
    monkeypatch.setenv("AGENTOPS_CHECKPOINT_EVERY_SECONDS", "3600")
    reset_settings()
    job = Checkpointer()
    job(store)
    assert not checkpoint_file(project).exists()  # nothing to sign
    fill(store, 4)
    job(store)  # the first checkpoint comes as soon as there are events
    fill(store, 4)
    job(store)
    fill(store, 1)
    job(store)
    job(store)
    assert [json.loads(x)["seq"] for x in checkpoint_file(project).read_text().splitlines()] == [4, 9]


def _append_and_checkpoint(url: str, project: str, worker: int) -> None:
    os.environ["AGENTOPS_DATABASE_URL"], os.environ["AGENTOPS_PROJECT_DIR"] = url, project
    from agentops.db import open_store

    store = open_store()
    for i in range(40):
        store.append_events([Event(actor=f"worker:{worker}", action="test.event", payload={"i": i})] * (1 + i % 3))
        if i % 10 == 9:
            service.audit_checkpoint(store)


def test_processes_appending_and_checkpointing_at_once_keep_one_gapless_chain(store, project: Path,
                                                                              db_url: str) -> None:
    fill(store, 1)
    service.audit_checkpoint()  # the key exists before the processes race to use it
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_and_checkpoint, args=(db_url, str(project), w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(300)
        assert p.exitcode == 0
    total = 1 + 3 * sum(1 + i % 3 for i in range(40))
    assert [r["seq"] for r in rows(store)] == list(range(1, total + 1))
    report = service.audit_verify()
    assert report.ok and report.count == total and report.checkpoints >= 4


# -- results bound in --------------------------------------------------------------------------------------


@task
def ledger_pick(n: int) -> dict:
    return {"replicas": n, "approved": False}


@flow
def ledger_flow(n: int = 3) -> dict:
    return {"picked": ledger_pick(n)}


def test_edited_step_outputs_run_results_and_parameters_are_detected(store) -> None:
    ledger_flow(n=4)
    run = store.list_runs(flow="ledger_flow")[0]
    step = store.steps_for_run(run.id)[0]
    service.audit_checkpoint()
    clean = service.audit_verify()
    assert clean.ok and clean.values_checked == 3  # the run's parameters and result, the step's output

    edits = [("step_runs", "output", "run_id", step.output, '{"replicas":40,"approved":true}', "step 1 of run"),
             ("flow_runs", "result", "id", run.result, '{"picked":null}', "stored result"),
             ("flow_runs", "parameters", "id", run.parameters, '{"n":40}', "stored parameters")]
    for table, column, key, original, forged, named in edits:
        tamper(store, f"UPDATE {table} SET {column} = :v WHERE {key} = :r", v=forged, r=run.id)
        report = service.audit_verify()
        assert not report.ok and named in report.problem and "(edited in the database)" in report.problem
        assert report.line().startswith("BROKEN: ")
        tamper(store, f"UPDATE {table} SET {column} = :v WHERE {key} = :r", v=original, r=run.id)
    assert service.audit_verify().ok


def test_a_deleted_step_row_is_detected(store) -> None:
    ledger_flow(n=2)
    tamper(store, "DELETE FROM step_runs")
    report = service.audit_verify()
    assert not report.ok and "step 1 of run" in report.problem and "its row is gone" in report.problem


@flow
def ledger_gated() -> dict:
    decision = request_approval("scale_deployment", {"name": "web-app", "replicas": 30}, reason="hot")
    return {"kind": decision.kind}


def test_a_decision_written_into_a_waiting_approval_step_is_detected(store) -> None:
    """The step of a pending approval has no output yet; that 'nothing' is bound too, so a forged decision written
    into it (which a resumed run would replay as approved) shows."""
    run_id = create_run(ledger_gated, {}, queue=False, worker_id="test", store=store)
    execute_run(run_id, worker_id="test", epoch=CREATED_EPOCH, store=store)
    assert store.get_run(run_id).state == "AWAITING_APPROVAL"
    tamper(store, "UPDATE step_runs SET state = 'COMPLETED', output = :o WHERE run_id = :r",
           o='{"kind":"approve","args":{"name":"web-app","replicas":30},"message":null}', r=run_id)
    report = service.audit_verify()
    assert not report.ok and "step 1 of run" in report.problem and "output" in report.problem


# -- secrets -------------------------------------------------------------------------------------------------


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
