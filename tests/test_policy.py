"""The policy engine: typos point at their line, constraints and conditions decide, limits hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentops.errors import ConfigError
from agentops.governance.policy import (
    BudgetUsage,
    MemoryRateCounter,
    load_policy,
    load_project_policy,
    project_tool_types,
    run_policy_cases,
)

ROOT = Path(__file__).resolve().parent.parent

BASE = """version: 1
tools:
  scale_deployment:
    verdict: allow
    constraints:
      replicas: {min: 1, max: 20}
    when:
      - if: replicas > 10
        verdict: require_approval
    rate_limit: {max: 3, per_seconds: 3600, key: name}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_typo_in_a_verdict_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("verdict: allow", "verdict: alow"))
    with pytest.raises(ConfigError, match=r"p\.yaml:4: tools\.scale_deployment\.verdict: Input should be"):
        load_policy(path)


def test_an_unknown_key_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("    rate_limit:", "    rate_limimt:"))
    with pytest.raises(ConfigError, match=r"p\.yaml:10: tools\.scale_deployment\.rate_limimt: unknown key"):
        load_policy(path)


def test_an_unsafe_condition_is_refused_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("replicas > 10", "__import__('os').system('id')"))
    with pytest.raises(ConfigError, match=r"p\.yaml:8: .*calls unknown function '__import__"):
        load_policy(path)


def test_constraints_deny_with_the_rule_that_decided() -> None:
    policy = load_policy(ROOT / "policies" / "default.yaml")
    v = policy.evaluate("scale_deployment", {"name": "web-app", "replicas": 50})
    assert (v.verdict, v.rule, v.reason) == ("deny", "tools.scale_deployment.constraints.replicas",
                                             "replicas=50 exceeds max 20")
    assert v.policy_hash == policy.hash
    mail = policy.evaluate("send_email", {"to": ["a@example.com", "x@evil.net"], "cc": [], "subject": "s"})
    assert mail.verdict == "deny" and "x@evil.net" in mail.reason
    assert policy.evaluate("create_ticket", {"priority": "P7"}).rule == "tools.create_ticket.constraints.priority"
    assert policy.evaluate("scale_deployment", {"name": "UPPER", "replicas": 2}).verdict == "deny"


def test_when_condition_requires_approval() -> None:
    policy = load_policy(ROOT / "policies" / "default.yaml")
    v = policy.evaluate("scale_deployment", {"name": "web-app", "replicas": 12})
    assert (v.verdict, v.rule) == ("require_approval", "tools.scale_deployment.when[0]")
    assert policy.evaluate("scale_deployment", {"name": "web-app", "replicas": 10}).verdict == "allow"


def test_rate_limit_is_per_deployment_and_window(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE))
    rate = MemoryRateCounter()
    verdicts = [policy.evaluate("scale_deployment", {"name": "web", "replicas": 2}, rate=rate, now=t).verdict
                for t in (0, 10, 20, 30)]
    assert verdicts == ["allow", "allow", "allow", "deny"]
    other = policy.evaluate("scale_deployment", {"name": "api", "replicas": 2}, rate=rate, now=40)
    assert other.verdict == "allow"
    crossed = policy.evaluate("scale_deployment", {"name": "web", "replicas": 2}, rate=rate, now=50)
    assert crossed.rule == "tools.scale_deployment.rate_limit" and "3 of 3" in crossed.reason
    assert policy.evaluate("scale_deployment", {"name": "web", "replicas": 2}, rate=rate, now=3601).verdict == "allow"


def test_unnamed_tools_are_denied_by_default(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, BASE))
    v = policy.evaluate("drop_database", {})
    assert (v.verdict, v.rule) == ("deny", "default-deny")
    empty = load_project_policy(tmp_path / "nothing-here")
    assert empty.evaluate("get_metrics", {}).verdict == "deny"


def test_hash_is_stable_and_changes_with_content(tmp_path: Path) -> None:
    a = load_policy(write(tmp_path, BASE)).hash
    assert load_policy(write(tmp_path, BASE)).hash == a
    assert load_policy(write(tmp_path, BASE.replace("max: 3", "max: 4"))).hash != a


def test_shadow_mode_records_without_enforcing(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "shadow: true\n" + BASE))
    v = policy.evaluate("scale_deployment", {"name": "web", "replicas": 99})
    assert v.verdict == "deny" and v.enforced is False


def test_budgets_report_a_readable_reason() -> None:
    policy = load_policy(ROOT / "policies" / "default.yaml")
    assert policy.check_budget(BudgetUsage(model_calls=3, tool_calls=2)) is None
    assert policy.check_budget(BudgetUsage(tool_calls=30)) == (
        "budget exhausted: 30 tool calls used of 30 allowed for this run")


def test_the_shipped_policy_passes_its_cases() -> None:
    policy = load_project_policy(ROOT)
    results = run_policy_cases(policy, ROOT / "policies" / "default.cases.yaml")
    assert len(results) >= 10 and [str(r) for r in results if not r.passed] == []


def test_two_files_defining_one_tool_conflict(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies", BASE, "a.yaml")
    write(tmp_path / "policies", BASE, "b.yaml")
    with pytest.raises(ConfigError, match="already defined"):
        load_project_policy(tmp_path, tools=project_tool_types(ROOT))
