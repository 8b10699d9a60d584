"""The session store on SQLite and PostgreSQL: only digests stored, expiry and logout recorded once across
processes, forged and tampered cookies refused; the settings and links beside it; conversations per user."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agentops import service
from agentops.db import open_store
from agentops.errors import AgentOpsError, ConfigError, PermissionDenied
from agentops.governance import sessions
from agentops.settings import get_settings, reset_settings

SECRET = b"a-test-secret-of-enough-length"
PASSWORD = "ada-approves"


@pytest.fixture
def ada(project: Path) -> object:
    service.add_user("ada", "approver", PASSWORD)
    user = open_store().get_user("ada")
    assert user is not None
    return user


def events(action: str) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in service.audit_search(action=action, limit=1000)]


def test_only_the_digest_is_stored_and_nothing_stored_logs_anyone_in(ada: object, project: Path) -> None:
    issued = service.sessions.log_in("ada", PASSWORD)
    assert issued is not None
    session_id = issued.cookie.split(".")[0]
    [row] = open_store().sessions_of("ada")
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest() and row.via == "local"
    assert row.expires_at == pytest.approx(issued.expires_at) and row.ended_at is None
    stored = json.dumps([e.payload for e in service.audit_search(limit=1000)]) + row.model_dump_json()
    assert session_id not in stored and issued.cookie.split(".")[2] not in stored
    url = get_settings().url
    if url.startswith("sqlite"):
        assert session_id.encode() not in Path(url.removeprefix("sqlite:///")).read_bytes()
    assert service.sessions.check_session(issued.cookie).account.name == "ada"  # type: ignore[union-attr]
    assert [e["via"] for e in events("session.started")] == ["local"]


def test_someone_who_writes_the_table_cannot_mint_a_session_without_the_secret(ada: object) -> None:
    """A row inserted for an id the writer chose, signed with any key but the app's, is refused."""
    store = open_store()
    chosen = "x" * 43
    store.add_session({"id_hash": sessions.digest(chosen), "user_name": "ada", "via": "local", "created_at": 0.0,
                       "expires_at": 4e9, "ended_at": None, "end_reason": None})
    guessed = sessions._signature(b"guessed-key-guessed-key", chosen, 4_000_000_000)
    assert service.sessions.check_session(f"{chosen}.4000000000.{guessed}").status == "tampered"


@pytest.mark.parametrize("cookie", ["", "admin", "a.b.c", "." * 3, "x" * 5000, "é" * 43 + ".1.2",
                                    "x" * 43 + ".-5." + "0" * 64, "x" * 43 + ".10.20.30", "\x00" * 50])
def test_hostile_cookies_are_refused_without_an_error(ada: object, cookie: str) -> None:
    checked = service.sessions.check_session(cookie)
    assert checked.account is None and checked.status in ("missing", "malformed", "tampered")
    assert service.sessions.log_out(cookie) is False


def test_a_changed_id_expiry_or_signature_is_tampered(ada: object) -> None:
    issued = sessions.start(open_store(), ada, "local", secret=SECRET, ttl=60)  # type: ignore[arg-type]
    session_id, expires, signature = issued.cookie.split(".")
    assert sessions.check(open_store(), issued.cookie, secret=SECRET).ok
    for forged in (f"{session_id[::-1]}.{expires}.{signature}", f"{session_id}.{int(expires) + 1}.{signature}",
                   f"{session_id}.{expires}.{signature[::-1]}"):
        assert sessions.check(open_store(), forged, secret=SECRET).status == "tampered"
    assert sessions.check(open_store(), issued.cookie, secret=b"another-secret-entirely").status == "tampered"


def test_expiry_is_refused_and_recorded_once_however_many_check_at_once(ada: object) -> None:
    store = open_store()
    issued = sessions.start(store, ada, "local", secret=SECRET, ttl=60, now=1000.0)  # type: ignore[arg-type]
    assert sessions.check(store, issued.cookie, secret=SECRET, now=1059.0).ok
    results: list[str] = []
    checkers = [threading.Thread(target=lambda: results.append(
        sessions.check(open_store(), issued.cookie, secret=SECRET, now=1060.0).status)) for _ in range(8)]
    for t in checkers:
        t.start()
    for t in checkers:
        t.join(30)
    assert results == ["expired"] * 8
    assert [e["user"] for e in events("session.expired")] == ["ada"]
    [row] = store.sessions_of("ada")
    assert row.end_reason == "expired" and row.ended_at == 1060.0
    assert sessions.end(store, issued.cookie, secret=SECRET) is False, "an expired session cannot be logged out"
    assert sessions.check(store, issued.cookie, secret=SECRET, now=1000.0).status == "expired", \
        "a clock set back does not bring it back"


def test_an_expiry_moved_later_in_the_database_does_not_lengthen_the_session(ada: object) -> None:
    """The cookie's own expiry is signed: someone who writes the table cannot keep a session alive past it."""
    import sqlalchemy as sa

    store = open_store()
    issued = sessions.start(store, ada, "local", secret=SECRET, ttl=60, now=1000.0)  # type: ignore[arg-type]
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE web_sessions SET expires_at = 4e9"))
    assert sessions.check(store, issued.cookie, secret=SECRET, now=1059.0).ok
    assert sessions.check(store, issued.cookie, secret=SECRET, now=1060.0).status == "expired"
    assert [e["user"] for e in events("session.expired")] == ["ada"]


def test_logout_revokes_everywhere_once(ada: object) -> None:
    issued = service.sessions.log_in("ada", PASSWORD)
    other = service.sessions.log_in("ada", PASSWORD)
    assert issued is not None and other is not None
    outcomes: list[bool] = []
    enders = [threading.Thread(target=lambda: outcomes.append(service.sessions.log_out(issued.cookie)))
              for _ in range(6)]
    for t in enders:
        t.start()
    for t in enders:
        t.join(30)
    assert sorted(outcomes) == [False] * 5 + [True]
    assert service.sessions.check_session(issued.cookie).status == "ended"
    assert service.sessions.check_session(other.cookie).status == "ok", "another tab's session is its own"
    assert len(events("user.logout")) == 1


def test_wrong_passwords_open_no_session_and_are_recorded(ada: object) -> None:
    assert service.sessions.log_in("ada", "not-her-password") is None
    assert service.sessions.log_in("nobody", PASSWORD) is None
    assert open_store().sessions_of("ada") == []
    assert [e["user"] for e in events("user.login_failed")] == ["nobody", "ada"]


def test_a_session_of_an_account_that_does_not_exist_is_refused(ada: object) -> None:
    store = open_store()
    store.add_session({"id_hash": sessions.digest("y" * 43), "user_name": "ghost", "via": "local",
                       "created_at": 0.0, "expires_at": 4e9, "ended_at": None, "end_reason": None})
    secret = service.sessions._secret()
    ghost = f"{'y' * 43}.4000000000.{sessions._signature(secret, 'y' * 43, 4_000_000_000)}"
    assert service.sessions.check_session(ghost).status == "disabled"


def test_the_secret_file_is_made_once_for_processes_starting_together(project: Path) -> None:
    code = ("from agentops.service import sessions; import hashlib; "
            "print(hashlib.sha256(sessions._secret()).hexdigest())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    digests = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(digests) == 1 and "" not in digests
    path = get_settings().state_dir / service.sessions.SECRET_FILE
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_settings_ttl_app_url_and_links(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert service.links.approval_url("abc123") == "http://127.0.0.1:8501/approvals?request=abc123"
    monkeypatch.setenv("AGENTOPS_APP_URL", "https://agentops.example.com/ops/")
    monkeypatch.setenv("AGENTOPS_SESSION_TTL", "30m")
    reset_settings()
    assert service.links.run_url("r1") == "https://agentops.example.com/ops/runs?run=r1"
    assert service.links.approval_url("a b&c") == "https://agentops.example.com/ops/approvals?request=a%20b%26c"
    assert service.sessions.session_ttl() == 1800
    for name, value in (("AGENTOPS_APP_URL", "javascript:alert(1)"), ("AGENTOPS_APP_URL", "http://"),
                        ("AGENTOPS_APP_URL", "http://host:port"), ("AGENTOPS_SESSION_TTL", "soon"),
                        ("AGENTOPS_SESSION_TTL", "-1h"), ("AGENTOPS_SESSION_TTL", "0")):
        monkeypatch.setenv(name, value)
        reset_settings()
        with pytest.raises(ConfigError, match=name):
            get_settings()
        monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTOPS_SESSION_SECRET", "short")
    reset_settings()
    with pytest.raises(ConfigError, match="AGENTOPS_SESSION_SECRET=<hidden>"):
        get_settings()
    monkeypatch.setenv("AGENTOPS_SESSION_SECRET", "a-long-enough-session-secret")
    reset_settings()
    service.add_user("ada", "approver", PASSWORD)
    issued = service.sessions.log_in("ada", PASSWORD)
    assert issued is not None and service.sessions.check_session(issued.cookie).status == "ok"
    assert not (get_settings().state_dir / service.sessions.SECRET_FILE).exists()


def test_conversations_are_listed_per_user_and_only_their_author_writes_in_them(project: Path) -> None:
    (project / "prompts").mkdir(exist_ok=True)
    for name, role in (("otto", "operator"), ("olga", "operator"), ("vera", "viewer")):
        service.add_user(name, role, f"{name}-password")
    store = open_store()
    for conversation, user, text, ts in (("c1", "otto", "first of otto", 1.0), ("c2", "olga", "olga asks", 2.0),
                                         ("c1", None, "the answer", 3.0)):
        store.add_chat_message({"conversation_id": conversation, "user": user,
                                "role": "user" if user else "assistant", "content": text, "ts": ts})
    listed = service.chat_conversations()
    assert [(c.conversation_id, c.owner, c.first_message, c.messages) for c in listed] == [
        ("c1", "otto", "first of otto", 2), ("c2", "olga", "olga asks", 1)]
    assert [c.conversation_id for c in service.chat_conversations(owner="olga")] == ["c2"]
    assert [m.content for m in service.chat_history("c1")] == ["first of otto", "the answer"]
    assert service.conversation_owner("c1") == "otto"
    with pytest.raises(PermissionDenied, match="otto's"):
        service.chat_send("scale api to 3 replicas", user="olga", conversation_id="c1")
    with pytest.raises(PermissionDenied, match="viewer"):
        service.chat_send("scale api to 3 replicas", user="vera", conversation_id="c1")
    for bad in ("", "x" * 33, "../c1", "c1' OR 1=1"):
        with pytest.raises(AgentOpsError, match="not a conversation id"):
            service.chat_history(bad)
    assert [m.content for m in service.chat_history("c1")] == ["first of otto", "the answer"]


def test_the_sessions_table_migrates_down_and_up_as_the_schema_declares_it(ada: object, db_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from agentops.db import Store, close_stores, schema
    from agentops.db.migrate import HEAD_REVISION, alembic_config

    assert service.sessions.log_in("ada", PASSWORD) is not None
    close_stores()
    store = Store(db_url)
    config = alembic_config(store)
    for target in ("0009_mcp_pins", HEAD_REVISION):
        with store.write() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target != HEAD_REVISION else command.upgrade)(config, target)
        inspector = sa.inspect(store.engine)
        assert ("web_sessions" in inspector.get_table_names()) == (target == HEAD_REVISION)
    migrated = {c["name"]: c["nullable"] for c in sa.inspect(store.engine).get_columns("web_sessions")}
    assert migrated == {c.name: c.nullable for c in schema.WEB_SESSIONS.columns}
    store.engine.dispose()
    close_stores()
    assert open_store().sessions_of("ada") == []
