"""Signed webhooks over real HTTP on loopback: a signed request starts its flow once; unsigned, forged, stale and
replayed requests are refused and recorded (replays across processes too), and a flood adds one event a minute."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentops import flow, service
from agentops.api.server import ApiServer
from agentops.db import open_store
from agentops.engine.project import load_project
from agentops.governance.users import add_user
from agentops.service import auth_failures
from agentops.service.hooks import signature_header
from tests.conftest import ROOT
from tests.pg_server import _free_port
from tests.server_process import stop_process, wait_until_ready

SECRET = "s3cr3t-for-the-greet-hook-0123456789"
HOOKS = """
hooks:
  greet:
    flow: hello
    secret_env: AGENTOPS_HOOK_GREET_SECRET
    as_user: hook-bot
    parameters:
      name: $.sender.login
  watcher:
    flow: hello
    secret_env: AGENTOPS_HOOK_GREET_SECRET
    as_user: watcher
  unlisted:
    flow: hook_unlisted
    secret_env: AGENTOPS_HOOK_GREET_SECRET
    as_user: hook-bot
  unset:
    flow: hello
    secret_env: AGENTOPS_HOOK_NEVER_SET_SECRET
    as_user: hook-bot
"""


@flow
def hook_unlisted(name: str = "x") -> str:
    """A flow the policy's start_flow rule does not list."""
    return name


@pytest.fixture
def hooks(ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API on a free loopback port, with hooks.yaml, the greet secret in the environment, and its accounts."""
    shutil.copytree(ROOT / "flows", ops_db_project / "flows", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (ops_db_project / "hooks.yaml").write_text(HOOKS)
    monkeypatch.setenv("AGENTOPS_HOOK_GREET_SECRET", SECRET)
    load_project()
    add_user(open_store(), "hook-bot", "operator", None)
    add_user(open_store(), "watcher", "viewer", None)
    server = ApiServer("127.0.0.1", _free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def signed(body: Any, *, secret: str = SECRET, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"X-Agentops-Signature": signature_header(secret, raw, at), "Content-Type": "application/json"}


def post(url: str, name: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/hooks/{name}", content=raw, headers=headers, timeout=30)


def hook_runs() -> list[Any]:
    return service.list_runs(trigger="hook", limit=100)


def failures(reason: str) -> list[dict[str, Any]]:
    return [json.loads(e.payload) for e in open_store().search_ledger(action="auth.failed", limit=1000)
            if e.action == "auth.failed" and json.loads(e.payload)["reason"] == reason]


def test_a_signed_request_starts_its_flow_with_parameters_from_the_body(hooks: str) -> None:
    raw, headers = signed({"sender": {"login": "octocat"}, "action": "opened"})
    response = post(hooks, "greet", raw, headers)
    assert response.status_code == 201, response.text
    run = service.get_run(response.json()["run_id"])
    assert (run.flow_name, run.trigger, run.created_by, run.state) == ("hello", "hook", "hook-bot", "PENDING")
    assert json.loads(run.parameters) == {"name": "octocat"}
    [received] = open_store().search_ledger(action="hook.received", limit=10)
    facts = json.loads(received.payload)
    assert received.run_id == run.id and facts["hook"] == "greet" and facts["flow"] == "hello"
    assert SECRET not in " ".join(e.payload for e in open_store().search_ledger(limit=1000))


@pytest.mark.parametrize(("body", "why"), [
    ({"sender": {"login": ""}}, "at least 1 character"),  # the flow's parameter type refuses it
    ({"sender": {"login": ["not", "a", "string"]}}, "name"),
    ({"sender": {}}, "the body has no $.sender.login"),
    ([1, 2, 3], "the body has no $.sender.login"),
])
def test_parameters_the_flow_refuses_start_nothing_and_are_recorded(hooks: str, body: Any, why: str) -> None:
    raw, headers = signed(body)
    response = post(hooks, "greet", raw, headers)
    assert response.status_code == 422 and why in response.json()["error"], response.text
    assert hook_runs() == []
    [refused] = open_store().search_ledger(action="hook.refused", limit=10)
    assert why in json.loads(refused.payload)["reason"]


def test_a_body_that_is_not_json_is_refused(hooks: str) -> None:
    raw = b"\xff\xfe not json"
    headers = {"X-Agentops-Signature": signature_header(SECRET, raw)}
    response = post(hooks, "greet", raw, headers)
    assert response.status_code == 422 and "not JSON" in response.json()["error"]
    assert hook_runs() == []


def test_unsigned_forged_and_stale_requests_are_refused_and_recorded(hooks: str) -> None:
    now = int(time.time())
    raw, good = signed({"sender": {"login": "mallory"}}, at=now)
    tampered = raw.replace(b"mallory", b"admin!!")
    attempts: list[tuple[str, bytes, dict[str, str]]] = [
        ("unsigned", raw, {}),
        ("unsigned", raw, {"X-Agentops-Signature": "sha256=" + "0" * 64}),  # GitHub's form is not ours
        ("unsigned", raw, {"X-Agentops-Signature": f"t={now}"}),
        ("unsigned", raw, {"X-Agentops-Signature": f"t=-5,v1={'a' * 64}"}),
        ("bad_signature", tampered, good),
        ("bad_signature", raw, signed({"sender": {"login": "mallory"}}, secret="another-secret-0123456789")[1]),
        ("bad_signature", raw, {"X-Agentops-Signature": good["X-Agentops-Signature"].replace(f"t={now}",
                                                                                               f"t={now + 1}")}),
        ("stale", raw, signed({"sender": {"login": "mallory"}}, at=now - 400)[1]),
        ("stale", raw, signed({"sender": {"login": "mallory"}}, at=now + 400)[1]),
    ]
    for reason, body, headers in attempts:
        response = post(hooks, "greet", body, headers)
        assert response.status_code == 401, (reason, headers, response.text)
    assert hook_runs() == []
    for reason in ("unsigned", "bad_signature", "stale"):
        recorded = failures(reason)
        assert len(recorded) == 1 and recorded[0]["kind"] == "hook" and recorded[0]["subject"] == "greet"
    counts = {(k, r): n for k, r, n in auth_failures.auth_failure_counts()}
    assert counts == {("hook", "unsigned"): 4, ("hook", "bad_signature"): 3, ("hook", "stale"): 2}
    stored = " ".join(e.payload for e in open_store().search_ledger(limit=1000))
    assert SECRET not in stored and good["X-Agentops-Signature"] not in stored


def test_a_replay_is_refused_even_after_a_restart_and_from_another_process(hooks: str, db_url: str,
                                                                           ops_db_project: Path) -> None:
    raw, headers = signed({"sender": {"login": "octocat"}})
    assert post(hooks, "greet", raw, headers).status_code == 201
    first_replay_minute = int(time.time() // 60)
    again = post(hooks, "greet", raw, headers)
    assert again.status_code == 409 and "replay" in again.json()["error"]
    port = _free_port()
    env = {**os.environ, "AGENTOPS_PROJECT_DIR": str(ops_db_project), "AGENTOPS_DATABASE_URL": db_url}
    process = subprocess.Popen([sys.executable, "-m", "agentops.cli", "api", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        other = f"http://127.0.0.1:{port}"
        wait_until_ready(process, lambda: httpx.get(f"{other}/api/openapi.json").status_code == 200,
                         "agentops api", not_yet=(httpx.HTTPError,))
        assert post(other, "greet", raw, headers).status_code == 409
        last_replay_minute = int(time.time() // 60)
        fresh_raw, fresh = signed({"sender": {"login": "hubot"}})
        assert post(other, "greet", fresh_raw, fresh).status_code == 201  # the other process starts new ones
    finally:
        stop_process(process)
    assert sorted(json.loads(r.parameters)["name"] for r in hook_runs()) == ["hubot", "octocat"]
    # Two replays: one event when they fell in one minute (a slow process start can carry them over into the
    # next, which starts its own), and both counted either way.
    assert len(failures("replayed")) in ((1,) if first_replay_minute == last_replay_minute else (1, 2))
    assert ("hook", "replayed", 2) in auth_failures.auth_failure_counts()


def test_the_same_request_arriving_eight_times_at_once_starts_one_run(hooks: str) -> None:
    raw, headers = signed({"sender": {"login": "burst"}})
    start = threading.Barrier(8)
    codes: list[int] = []

    def send() -> None:
        start.wait()
        codes.append(post(hooks, "greet", raw, headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * 7
    assert len(hook_runs()) == 1


def test_the_hooks_account_role_the_policy_and_a_missing_secret_each_refuse(hooks: str) -> None:
    raw, headers = signed({"sender": {"login": "x"}})
    viewer = post(hooks, "watcher", raw, headers)
    assert viewer.status_code == 403 and "needs one of" in viewer.json()["error"]
    raw, headers = signed({"n": 1})
    denied = post(hooks, "unlisted", raw, headers)
    assert denied.status_code == 403 and "policy refuses starting 'hook_unlisted' from hook 'unlisted'" in \
        denied.json()["error"]
    unset = post(hooks, "unset", raw, headers)
    assert unset.status_code == 401 and "no usable secret" in unset.json()["error"]
    unknown = post(hooks, "nope", raw, headers)
    assert unknown.status_code == 404
    assert post(hooks, "..%2F..%2Fetc", raw, headers).status_code in (404, 422)
    assert hook_runs() == []
    assert len(open_store().search_ledger(action="hook.refused", limit=10)) == 2
    assert {f["reason"] for f in failures("no_secret") + failures("unknown_hook")} == {"no_secret", "unknown_hook"}


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(hooks: str) -> None:
    raw = b'{"a": "' + b"x" * (1 << 20) + b'"}'
    response = post(hooks, "greet", raw, {"X-Agentops-Signature": signature_header(SECRET, raw)})
    assert response.status_code == 413
    assert hook_runs() == []


def test_a_flood_adds_one_event_a_minute_and_the_next_minute_counts_the_rest(
        hooks: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, _ = signed({"sender": {"login": "flood"}})
    before = open_store().ledger_count()
    for i in range(25):
        assert post(hooks, "greet", raw, {"X-Agentops-Signature": f"t={int(time.time())},v1={i:064x}"}
                    ).status_code == 401
    assert open_store().ledger_count() - before <= 3  # the first of this minute (at a boundary: the next's too)

    class NextMinute:
        @staticmethod
        def time() -> float:
            return time.time() + 60

    monkeypatch.setattr(auth_failures, "time", NextMinute)
    assert post(hooks, "greet", raw, {"X-Agentops-Signature": f"t={int(time.time())},v1={'f' * 64}"}
                ).status_code == 401
    repeats = [json.loads(e.payload) for e in open_store().search_ledger(action="auth.failed_repeats", limit=10)]
    assert sum(r["count"] for r in repeats) + len(failures("bad_signature")) == 26
    assert ("hook", "bad_signature", 26) in auth_failures.auth_failure_counts()


def test_a_broken_hooks_file_is_one_line_naming_it(hooks: str, ops_db_project: Path) -> None:
    (ops_db_project / "hooks.yaml").write_text("hooks:\n  greet:\n    flow: hello\n    secret_env: OPENAI_API_KEY\n"
                                               "    as_user: hook-bot\n")
    raw, headers = signed({})
    response = post(hooks, "greet", raw, headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("hooks.yaml:4: hooks.greet.secret_env")
    assert hook_runs() == []
