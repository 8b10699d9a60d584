"""The HTTP host allowlist: a URL is parsed once into scheme, host and port as the client connects, compared
exactly, sent rebuilt, and every redirect is screened again (real loopback servers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import idna
import pytest
from langchain_core.messages import AIMessage

from agentops import flow
from agentops.agents import Agent
from agentops.agents.models.scripted import ScriptedChatModel
from agentops.db import open_store
from agentops.errors import ConfigError
from agentops.governance.policy import load_policy
from agentops.governance.urls import UrlError, parse_host_entry, parse_url
from tests.fakes.http_base import FakeServer

# Every spelling the C library reads as 127.0.0.1 when a client connects.
LOOPBACK_SPELLINGS = ["127.0.0.1", "2130706433", "0x7f.1", "0x7F.0.0.1", "0177.0.0.1", "127.1", "127.0.1",
                      "0x7f000001", "017700000001", "127.000.000.001", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
                      "127.0.0.1."]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_numeric_and_mapped_forms_are_the_address_a_connection_reaches(host: str) -> None:
    target = parse_url(f"http://{host}:8080/x?y=1#frag")
    assert (target.scheme, target.host, target.port, target.path) == ("http", "127.0.0.1", 8080, "/x?y=1")
    assert target.url == "http://127.0.0.1:8080/x?y=1"


def test_names_are_normalised_case_trailing_dot_and_idna() -> None:
    assert parse_url("HTTPS://API.Example.COM./v1").url == "https://api.example.com/v1"
    assert parse_url("http://api.example.com:80").url == "http://api.example.com/"
    assert parse_url("http://[0:0:0:0:0:0:0:1]:9000/").host == "[::1]"
    lookalike = "\u0430pi.example.com"  # a Cyrillic a
    assert parse_url(f"https://{lookalike}/").host == idna.encode(lookalike).decode() != "api.example.com"


REFUSED_URLS = [
    "https://api.example.com@evil.com/", "https://user:pass@api.example.com/", "http://@api.example.com/",
    "https://api.example.com%2f@evil.com/", "https://evil.com\\@api.example.com/", "http:\\\\api.example.com\\",
    "http://api.example.com\t/", "http://api.example.com /", "http://api.exa mple.com/", " http://api.example.com/",
    "http://api.example.com\r\nHost: evil.com/", "http://api.example.com\x00.evil.com/", "http://api\u200b.example.com/",
    "ftp://api.example.com/", "file:///etc/passwd", "javascript:alert(1)", "gopher://api.example.com/",
    "//api.example.com/", "api.example.com/x", "http:///api.example.com/", "http:api.example.com",
    "http://api.example.com:0/", "http://api.example.com:65536/", "http://api.example.com:/",
    "http://api.example.com:+80/", "http://api.example.com:8o/", "http://api.example.com:80:80/",
    "http://[fe80::1%25eth0]/", "http://[::1/", "http://::1/", "http://[127.0.0.1]/", "http://%61pi.example.com/",
    "http://08.1.1.1/", "http://256.1.1.1/", "http://1.2.3.4.5/", "http://foo.123/", "http://0x/",
    "http://api..example.com/", "http://-api.example.com/", "http://\uff41pi.example.com/", 42, None,
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_what_is_not_one_plain_http_target_is_refused(url: Any) -> None:
    with pytest.raises(UrlError):
        parse_url(url)


POLICY = """version: 1
tools:
  http_request:
    verdict: allow
    constraints:
      url: {hosts: ["127.0.0.1:8080", API.example.com, "[::1]:9000"]}
"""

ALLOWED = ["http://127.0.0.1:8080/x", "http://2130706433:8080/", "http://[::ffff:127.0.0.1]:8080/",
           "https://api.example.com/", "http://API.EXAMPLE.COM./", "http://api.example.com:80/",
           "https://api.example.com:443/v1?q=1", "http://[::1]:9000/", "http://[0::1]:9000/"]
DENIED = ["http://127.0.0.1/", "http://127.0.0.1:8081/", "http://0x7f.1:8081/", "http://127.0.0.2:8080/",
          "http://localhost:8080/", "http://api.example.com:8443/", "https://api.example.com:80/",
          "http://api.example.com.evil.com/", "http://evil-api.example.com/", "http://sub.api.example.com/",
          "http://apiexample.com/", "https://evil.com#@api.example.com/", "https://evil.com?@api.example.com/",
          "http://[::1]:8080/", "http://[::1]/", *[u for u in REFUSED_URLS if u is not None]]


@pytest.fixture
def policy(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "http.yaml"
    path.write_text(POLICY)
    return load_policy(path)


@pytest.mark.parametrize("url", ALLOWED)
def test_the_policy_allows_an_entry_as_such(policy, url: str) -> None:
    assert policy.evaluate("http_request", {"url": url, "method": "GET"}).verdict == "allow"


@pytest.mark.parametrize("url", DENIED)
def test_the_policy_denies_other_hosts_ports_and_every_trick(policy, url: Any) -> None:
    verdict = policy.evaluate("http_request", {"url": url, "method": "GET"})
    assert (verdict.verdict, verdict.rule) == ("deny", "tools.http_request.constraints.url")


def test_entries_are_normalised_like_hosts() -> None:
    assert str(parse_host_entry("API.Example.com.")) == "api.example.com"
    assert str(parse_host_entry("2130706433:8080")) == "127.0.0.1:8080"
    assert str(parse_host_entry("[::ffff:127.0.0.1]")) == "127.0.0.1"


@pytest.mark.parametrize("entry", ["http://api.example.com", "api.example.com/v1", "user@api.example.com",
                                   "api.example.com:99999", "api.example.com:", "::1", "[::1", "",
                                   "api example.com", "*.example.com", "08.1.1.1"])
def test_an_entry_that_is_not_a_host_is_refused_at_load_with_its_line(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(POLICY.replace("API.example.com", json.dumps(entry)))
    with pytest.raises(ConfigError, match=r"bad\.yaml:6: tools\.http_request\.constraints\.url\.hosts"):
        load_policy(path)


# -- end to end: an agent, the project's policy, real servers on loopback -------------------------------


class Redirector(FakeServer):
    """Answers /ok and /echo; every other path redirects to where `routes` says."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, tuple[int, str]] = {}

    def handle(self, request: dict[str, Any]) -> tuple[Any, ...]:
        path = request["path"]
        if path in ("/ok", "/echo"):
            return 200, {"method": request["method"], "body": request["body"], "host": request["headers"]["Host"]}
        status, location = self.routes.get(path, (404, ""))
        return status, {"redirect": location}, ({"Location": location} if location else {})


class Counter(FakeServer):
    def handle(self, request: dict[str, Any]) -> tuple[Any, ...]:
        return 200, {"reached": True}


def _get(url: str, call_id: str, method: str = "GET", body: dict | None = None) -> dict:
    return {"name": "http_request", "args": {"url": url, "method": method, "body": body}, "id": call_id,
            "type": "tool_call"}


def test_an_agent_reaches_only_allowlisted_hosts_and_ports_through_every_redirect(ops_db_project: Path) -> None:
    with Redirector() as allowed, Counter() as foreign:
        a, b = allowed.port, foreign.port
        policy = ops_db_project / "policies" / "default.yaml"
        policy.write_text(policy.read_text().replace('url: {hosts: ["127.0.0.1:8080", "localhost:8080"]}',
                                                     f'url: {{hosts: ["127.0.0.1:{a}"]}}'))
        allowed.routes = {
            "/hop": (302, "/ok"),
            "/to-port": (302, f"http://127.0.0.1:{b}/secret"),
            "/to-name": (302, f"http://localhost:{a}/ok"),
            "/to-numeric": (301, f"http://2130706433:{b}/secret"),
            "/to-mapped": (307, f"http://[::ffff:127.0.0.1]:{b}/secret"),
            "/to-userinfo": (302, f"http://127.0.0.1:{a}@127.0.0.1:{b}/secret"),
            "/to-backslash": (302, f"/\\127.0.0.1:{b}/secret"),
            "/to-scheme-relative": (308, f"//127.0.0.1:{b}/secret"),
            "/to-ftp": (302, f"ftp://127.0.0.1:{a}/ok"),
            "/via-hop": (302, "/to-port"),
            "/loop": (302, "/loop"),
            "/post": (307, "/echo"),
            "/see-other": (303, "/echo"),
        }
        base = f"http://127.0.0.1:{a}"
        proposed = [
            _get(f"{base}/ok", "ok"), _get(f"http://2130706433:{a}/ok", "numeric-ok"), _get(f"{base}/hop", "hop"),
            *[_get(f"{base}{path}", path) for path in ["/to-port", "/to-name", "/to-numeric", "/to-mapped",
                                                        "/to-userinfo", "/to-backslash", "/to-scheme-relative",
                                                        "/to-ftp", "/via-hop", "/loop"]],
            _get(f"{base}/post", "post", "POST", {"n": 1}), _get(f"{base}/see-other", "see-other", "POST", {"n": 2}),
            _get(f"http://127.0.0.1:{b}/secret", "p-port"), _get(f"http://localhost:{a}/ok", "p-name"),
            _get(f"{base}@127.0.0.1:{b}/secret", "p-userinfo"), _get(f"http://0x7f.1:{b}/secret", "p-numeric"),
            _get(f"http://127.0.0.1:{a}\\@127.0.0.1:{b}/", "p-backslash"),
        ]
        model = ScriptedChatModel(replies=[AIMessage(content="", tool_calls=proposed), AIMessage(content="done")])

        @flow(name=f"fetcher_{id(model)}")
        def fetcher() -> list:
            result = Agent(name="fetcher", prompt="incident", tools=["http_request"], model=model).run("look")
            return [(o.status, o.content) for o in result.tool_calls]

        outcomes = dict(zip([c["id"] for c in proposed], fetcher(), strict=True))

    assert foreign.requests == [], "nothing reached the host:port outside the allowlist"
    assert "/secret" not in [r["path"] for r in allowed.requests]

    def ok(call_id: str) -> dict:
        status, content = outcomes[call_id]
        assert status == "ok", (call_id, content)
        return json.loads(content)

    assert json.loads(ok("ok")["body"])["host"] == f"127.0.0.1:{a}"
    assert json.loads(ok("numeric-ok")["body"])["host"] == f"127.0.0.1:{a}", "the rebuilt URL is what is sent"
    assert ok("hop")["redirects"] == [f"{base}/ok"]
    assert json.loads(ok("post")["body"]) == {"method": "POST", "body": {"n": 1}, "host": f"127.0.0.1:{a}"}
    assert json.loads(ok("see-other")["body"])["method"] == "GET"
    for path in ["/to-port", "/to-name", "/to-numeric", "/to-mapped", "/to-userinfo", "/to-backslash",
                 "/to-scheme-relative", "/to-ftp", "/via-hop"]:
        status, content = outcomes[path]
        assert status == "error" and "PermissionError: redirect from" in content and "refused" in content, path
    assert outcomes["/loop"][0] == "error" and "more than 5 redirects" in outcomes["/loop"][1]
    for call_id in ["p-port", "p-name", "p-userinfo", "p-numeric", "p-backslash"]:
        status, content = outcomes[call_id]
        assert status == "refused" and "rule tools.http_request.constraints.url" in content, call_id

    run = open_store().list_runs()[0]
    results = [json.loads(e.payload) for e in open_store().search_ledger(run_id=run.id, action="tool.result")]
    refused = [r for r in results if "redirect from" in r["content"]]
    assert len(refused) == 9 and all(r["status"] == "error" for r in refused)
