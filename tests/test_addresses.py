"""Recipients are parsed, not split: no trick gets a foreign address past an email-domain constraint, and
what reaches SMTP is the parsed list (checked on a real aiosmtpd server)."""

from __future__ import annotations

import json
from email.headerregistry import Address as StdAddress
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.db import open_store
from agentops.engine.toolkit import ToolCallInfo, current_tool_call, load_tools
from agentops.errors import ConfigError
from agentops.governance.addresses import AddressError, domain_allowed, parse_address
from agentops.governance.policy import load_policy
from agentops.settings import reset_settings
from tests.fakes.services import SMTPSink

# Each of these must be refused outright: none is exactly one plain address.
TRICKS = [
    "attacker@evil.com, oncall@example.com",
    "attacker@evil.com,oncall@example.com",
    "attacker@evil.com;oncall@example.com",
    "attacker@evil.com oncall@example.com",
    "attacker@evil.com@example.com",
    '"oncall@example.com" <attacker@evil.com>',
    "Oncall <oncall@example.com>",
    "<oncall@example.com>",
    "attacker@evil.com(oncall@example.com)",
    "oncall@example.com(comment)",
    "(oncall@example.com)attacker@evil.com",
    "oncall@example.com\r\nBcc: attacker@evil.com",
    "oncall@example.com\nattacker@evil.com",
    "oncall@example.com\x00attacker@evil.com",
    "=?utf-8?q?attacker=40evil.com?=@example.com",
    "=?utf-8?b?YXR0YWNrZXJAZXZpbC5jb20=?= <oncall@example.com>",
    "undisclosed:;",
    "undisclosed: attacker@evil.com;",
    "team: oncall@example.com, attacker@evil.com;",
    '"attacker@evil.com"@example.com',
    '"attacker"@example.com',
    "@evil.com:oncall@example.com",
    "<@evil.com:oncall@example.com>",
    "attacker%evil.com@example.com",
    "evil.com!attacker@example.com",
    "oncall@[127.0.0.1]",
    "oncall@[IPv6:::1]",
    "oncall@127.0.0.1",
    "oncall@example.com.",
    "oncall@example..com",
    "oncall@-example.com",
    "oncall@ex\u0430mple.com",  # a Cyrillic a
    "oncall@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth letters
    "oncall\uff20example.com",  # a fullwidth at sign
    "oncall@example.com\u200b",
    " oncall@example.com",
    "oncall@example.com ",
    "oncall @ example.com",
    "on call@example.com",
    ".oncall@example.com",
    "oncall.@example.com",
    "on..call@example.com",
    "oncall",
    "oncall@",
    "@example.com",
    "",
    "x" * 65 + "@example.com",
]


def test_a_plain_address_parses_to_itself_with_the_domain_in_lower_case() -> None:
    for text in ["oncall@example.com", "first.last+tag@ops.example.com", "o'brien@example.com",
                 "a_b-c@x-y.example.com"]:
        address, std = parse_address(text), StdAddress(addr_spec=text)
        assert str(address) == text and (address.local, address.domain) == (std.username, std.domain)
    assert str(parse_address("OnCall@Example.COM")) == "OnCall@example.com"


@pytest.mark.parametrize("text", TRICKS)
def test_every_trick_is_refused_by_the_parser(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


@pytest.mark.parametrize("value", [None, 3, ["oncall@example.com"], {"to": "oncall@example.com"}])
def test_a_recipient_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(AddressError, match="must be a string"):
        parse_address(value)


def test_domains_compare_exactly_and_subdomains_only_when_the_policy_says_so() -> None:
    exact, wildcard = ["example.com"], ["*.example.com"]
    assert domain_allowed("example.com", exact) and domain_allowed("EXAMPLE.com", exact)
    for foreign in ["example.com.evil.com", "evil-example.com", "evilexample.com", "sub.example.com", "com",
                    "example.co", "xample.com"]:
        assert not domain_allowed(foreign, exact), foreign
    assert domain_allowed("sub.example.com", wildcard) and domain_allowed("a.b.example.com", wildcard)
    for foreign in ["example.com", "evilexample.com", "example.com.evil.com", "sub.example.com.evil.com"]:
        assert not domain_allowed(foreign, wildcard), foreign


POLICY = """version: 1
tools:
  send_email:
    verdict: allow
    constraints:
      to: {email_domains: [Example.com, "*.ops.example.com"]}
      cc: {email_domains: [Example.com, "*.ops.example.com"]}
"""


@pytest.fixture
def policy(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "mail.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def mail(to: list, cc: list | None = None) -> dict:
    return {"to": to, "cc": cc or [], "subject": "s", "body": "b"}


@pytest.mark.parametrize("text", TRICKS)
def test_the_policy_denies_every_trick_in_to_and_in_cc_alone_or_in_a_list(policy, text: str) -> None:
    for args, arg in [(mail([text]), "to"), (mail(["oncall@example.com", text]), "to"),
                      (mail([text, "oncall@example.com"]), "to"), (mail(["oncall@example.com"], [text]), "cc"),
                      (mail(["oncall@example.com"], ["a@example.com", text]), "cc")]:
        verdict = policy.evaluate("send_email", args)
        assert (verdict.verdict, verdict.rule) == ("deny", f"tools.send_email.constraints.{arg}"), args


def test_the_policy_allows_plain_addresses_at_the_named_domains_only(policy) -> None:
    allowed = mail(["oncall@example.com", "ONCALL@EXAMPLE.COM", "pager@eu.ops.example.com"], ["x@a.b.ops.example.com"])
    assert policy.evaluate("send_email", allowed).verdict == "allow"
    for foreign in ["a@example.com.evil.com", "a@evil-example.com", "a@sub.example.com", "a@ops.example.com",
                    "a@evilops.example.com.evil.com", "a@gmail.com"]:
        verdict = policy.evaluate("send_email", mail(["oncall@example.com", foreign]))
        assert verdict.verdict == "deny" and "outside the allowed domains" in verdict.reason, foreign


def test_a_string_where_the_schema_wants_a_list_is_still_one_address(policy) -> None:
    verdict = policy.evaluate("send_email", {"to": "attacker@evil.com,oncall@example.com", "cc": []})
    assert verdict.verdict == "deny" and "not exactly one plain address" in verdict.reason


@pytest.mark.parametrize("pattern", ["@example.com", "example.com.", "*example.com", "*.", "exa mple.com", "",
                                     "example.com,evil.com", "127.0.0.1", "[127.0.0.1]", "*.*.example.com", "ex*.com"])
def test_a_domain_entry_that_is_not_a_domain_is_refused_at_load_with_its_line(tmp_path: Path, pattern: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(POLICY.replace('"*.ops.example.com"]}\n      cc', f"{json.dumps(pattern)}]}}\n      cc"))
    with pytest.raises(ConfigError, match=r"bad\.yaml:6: tools\.send_email\.constraints\.to\.email_domains"):
        load_policy(path)


# -- end to end: an agent, the project's policy, a real SMTP server ------------------------------------


def _allow_mail(project: Path) -> None:
    """The project's policy with send_email allowed (its domain constraints unchanged)."""
    path = project / "policies" / "default.yaml"
    text = path.read_text()
    text = text.replace("verdict: require_approval\n    reason: mail leaving the team needs a person",
                        "verdict: allow")
    assert "email_domains: [example.com, ops.example.com]" in text
    path.write_text(text)


def _send(to: list, cc: list | None = None, call_id: str = "c") -> dict:
    return {"name": "send_email", "args": {"to": to, "cc": cc or [], "subject": "alert", "body": "p95 2.5 s"},
            "id": call_id, "type": "tool_call"}


def _run_mailer(calls: list[dict]) -> list[tuple[str, str, str]]:
    model = ScriptedChatModel(replies=[AIMessage(content="", tool_calls=calls), AIMessage(content="done")])

    @flow(name=f"mailer_{id(model)}")
    def mailer() -> list:
        result = Agent(name="mailer", prompt="incident", tools=["send_email"], model=model).run("tell on-call")
        return [(o.name, o.status, o.content) for o in result.tool_calls]

    return [tuple(c) for c in mailer()]


def test_an_agent_gets_no_foreign_address_past_the_policy_and_smtp_gets_the_parsed_list(
        ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _allow_mail(ops_db_project)
    hostile = [_send([trick], call_id=f"h{i}") for i, trick in enumerate(TRICKS)]
    hostile += [_send(["oncall@example.com", "attacker@evil.com"], call_id="list"),
                _send(["oncall@example.com"], ["attacker@example.com.evil.com"], call_id="cc")]
    good = _send(["oncall@example.com", "Pager@OPS.example.com"], ["lead@example.com"], call_id="good")
    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        outcomes = _run_mailer([*hostile, good])
    assert [status for _, status, _ in outcomes] == ["refused"] * len(hostile) + ["ok"]
    assert all("policy denied 'send_email'" in content for _, _, content in outcomes[:-1])
    [message] = smtp.messages
    assert message["X-RcptTo"] == "oncall@example.com, Pager@ops.example.com, lead@example.com"
    assert message["To"] == "oncall@example.com, Pager@ops.example.com" and message["Cc"] == "lead@example.com"
    assert [m.to for m in open_store().outbox_list()] == ["oncall@example.com, Pager@ops.example.com, lead@example.com"]
    run = open_store().list_runs()[0]
    denied = [json.loads(e.payload) for e in open_store().search_ledger(run_id=run.id, action="policy.verdict")]
    assert sum(1 for d in denied if d["verdict"]["verdict"] == "deny") == len(hostile)


def test_the_tool_itself_refuses_what_is_not_one_plain_address_even_when_the_policy_is_not_enforced(
        ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shadow mode records verdicts without enforcing them: the tool's own parse still stands."""
    _allow_mail(ops_db_project)
    monkeypatch.setenv("AGENTOPS_SHADOW_POLICY", "true")
    tricks = ["attacker@evil.com, oncall@example.com", '"oncall@example.com" <attacker@evil.com>',
              "oncall@example.com\r\nBcc: attacker@evil.com", "undisclosed:;"]
    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        outcomes = _run_mailer([_send(["oncall@example.com"], [t], call_id=f"c{i}") for i, t in enumerate(tricks)])
    assert [status for _, status, _ in outcomes] == ["error"] * len(tricks)
    assert all("AddressError" in content and "plain address" in content for _, _, content in outcomes)
    assert smtp.messages == [] and open_store().outbox_list() == []
    run = open_store().list_runs()[0]
    results = [json.loads(e.payload) for e in open_store().search_ledger(run_id=run.id, action="tool.result")]
    assert [r["status"] for r in results] == ["error"] * len(tricks)


def test_called_directly_the_tool_builds_envelope_and_headers_from_the_parsed_addresses(
        ops_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = load_tools(ops_project)["send_email"]
    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        token = current_tool_call.set(ToolCallInfo("run1", 1, "run1:1"))
        try:
            with pytest.raises(AddressError):
                tool.invoke({"to": ["oncall@example.com", "a@example.com, b@evil.com"], "subject": "s", "body": "b"})
            sent = tool.invoke({"to": ["OnCall@EXAMPLE.com"], "cc": ["b@Ops.Example.com"], "subject": "s",
                                "body": "b"})
        finally:
            current_tool_call.reset(token)
    assert sent["to"] == ["OnCall@example.com"]
    [message] = smtp.messages
    assert message["X-MailFrom"] == "agentops@example.com"
    assert message["X-RcptTo"] == "OnCall@example.com, b@ops.example.com"
    assert (message["To"], message["Cc"]) == ("OnCall@example.com", "b@ops.example.com")


def test_an_approver_cannot_edit_a_foreign_address_in_and_the_edit_that_passes_is_what_smtp_gets(
        ops_db_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentops.engine.runner import create_run
    from agentops.engine.worker import Worker
    from agentops.errors import PolicyViolation
    from agentops.governance.approvals import decide
    from agentops.governance.users import add_user

    store = open_store()
    add_user(store, "ada", "approver", "correct horse battery")
    model = ScriptedChatModel(replies=[AIMessage(content="", tool_calls=[_send(["cfo@example.com"])]),
                                       AIMessage(content="done")])

    @flow(name=f"report_mailer_{id(model)}")
    def report_mailer() -> list:
        result = Agent(name="mailer", prompt="incident", tools=["send_email"], model=model).run("tell the cfo")
        return [(o.name, o.status, o.content) for o in result.tool_calls]

    with SMTPSink() as smtp:
        monkeypatch.setenv("AGENTOPS_SMTP_URL", smtp.url)
        reset_settings()
        run_id = create_run(report_mailer, {}, store=store)
        Worker(store, poll_seconds=0.01).run(burst=True)
        [approval] = store.list_approvals(run_id=run_id)
        for hostile in [["cfo@example.com, attacker@evil.com"], ["cfo@example.com", "attacker@evil.com"],
                        ['"cfo@example.com" <attacker@evil.com>'], ["cfo@example.com.evil.com"]]:
            edited = {"to": hostile, "cc": [], "subject": "alert", "body": "p95 2.5 s"}
            with pytest.raises(PolicyViolation, match="edited arguments rejected by policy"):
                decide(store, approval.id, "edit", user="ada", edited_args=edited)
        assert store.get_run(run_id).state == "AWAITING_APPROVAL"
        decide(store, approval.id, "edit", user="ada", edited_args={
            "to": ["cfo@example.com", "lead@ops.example.com"], "cc": [], "subject": "alert", "body": "p95 2.5 s"})
        Worker(store, poll_seconds=0.01).run(burst=True)
    assert store.get_run(run_id).state == "COMPLETED"
    [message] = smtp.messages
    assert message["X-RcptTo"] == "cfo@example.com, lead@ops.example.com"
