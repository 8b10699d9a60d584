"""A policy that names what does not exist, or compares what cannot meet, is refused at load with file:line;
a condition that fails at run time denies. Never a silent allow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentops.core.expressions import ExpressionError, evaluate, evaluate_condition
from agentops.errors import ConfigError
from agentops.governance.policy import MemoryRateCounter, load_policy, project_tool_types
from tests.test_cli import agentops

ROOT = Path(__file__).resolve().parent.parent
TOOLS = project_tool_types(ROOT)

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
  get_metrics:
    verdict: allow
  create_ticket:
    verdict: allow
    when:
      - if: priority == "P1"
        verdict: require_approval
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, old: str, new: str) -> str:
    assert old in BASE
    with pytest.raises(ConfigError) as caught:
        load_policy(write(tmp_path, BASE.replace(old, new)), tools=TOOLS)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("replicas > 10", "replicaz > 10",
     r"p\.yaml:8: tools\.scale_deployment\.when\.0\.if: 'replicaz > 10': unknown name 'replicaz' "
     r"\(did you mean 'replicas'\? known: name, replicas\)"),
    ("replicas > 10", "replicas > '10'", r"p\.yaml:8: .*cannot order number against string"),
    ("replicas > 10", "replicas == True", r"p\.yaml:8: .*compares number with boolean"),
    ("replicas > 10", "replicas > 10 and name", r"p\.yaml:8: .*'name' is a string, not true or false"),
    ("replicas > 10", "replicas", r"p\.yaml:8: .*is a number, not a boolean"),
    ("replicas > 10", "lower(name) == 'web'", r"p\.yaml:8: .*calls unknown function 'lower'"),
    ("replicas > 10", "name.lower() == 'web'", r"p\.yaml:8: .*calls unknown function 'name\.lower'"),
    ("replicas > 10", "name.__class__ == 'web'", r"p\.yaml:8: .*attribute access 'name\.__class__' is not allowed"),
    ("replicas > 10", "args.replicaz > 10", r"p\.yaml:8: .*unknown name 'replicaz'"),
    ('priority == "P1"', 'priority == "p1"', r"p\.yaml:16: .*'p1' is never a value here \(allowed: 'P1', 'P2'"),
    ("      replicas: {min: 1, max: 20}", "      replicaz: {min: 1, max: 20}",
     r"p\.yaml:6: tools\.scale_deployment\.constraints\.replicaz: unknown argument 'replicaz' "
     r"\(scale_deployment takes: name, replicas\)"),
    ("      replicas: {min: 1, max: 20}", "      name: {min: 1, max: 20}",
     r"p\.yaml:6: .*min/max apply to numbers, and 'name' is a string"),
    ("      replicas: {min: 1, max: 20}", "      replicas: {regex: '[0-9]+'}",
     r"p\.yaml:6: .*regex applies to strings, and 'replicas' is a number"),
    ("      replicas: {min: 1, max: 20}", "      replicas: {enum: ['1', '2']}",
     r"p\.yaml:6: .*enum value '1' can never equal 'replicas', which is a number"),
    ("key: name}", "key: nmae}", r"p\.yaml:10: tools\.scale_deployment\.rate_limit\.key: unknown argument 'nmae'"),
    ("  get_metrics:", "  get_metricz:",
     r"p\.yaml:11: tools\.get_metricz: unknown tool 'get_metricz' \(did you mean 'get_metrics'\?"),
    ("  get_metrics:\n    verdict: allow\n", "  get_metrics:\n    verdict: allow\n  get_metrics:\n    verdict: deny\n",
     r"p\.yaml:13: tools\.get_metrics: given twice \(first on line 11\)"),
])
def test_a_mistake_in_a_policy_is_refused_at_load_with_its_line(tmp_path: Path, old: str, new: str,
                                                                expected: str) -> None:
    message = refusal(tmp_path, old, new)
    assert re.search(expected, message), message


def test_the_shipped_policy_passes_the_check() -> None:
    policy = load_policy(ROOT / "policies" / "default.yaml", tools=TOOLS)
    assert "start_flow" in policy.rules, "the built-in start_flow tool is known to the check"


def test_a_condition_that_fails_at_run_time_denies_with_the_reason(tmp_path: Path) -> None:
    text = BASE.replace("  get_metrics:\n    verdict: allow\n",
                        "  get_metrics:\n    verdict: allow\n    when:\n      - if: name > 'm'\n"
                        "        verdict: allow\n")
    policy = load_policy(write(tmp_path, text), tools=TOOLS)
    verdict = policy.evaluate("get_metrics", {"name": None})
    assert (verdict.verdict, verdict.rule) == ("deny", "tools.get_metrics.when[0]")
    assert "could not be evaluated, so the call is denied: cannot order null None against string 'm'" in verdict.reason
    assert policy.evaluate("get_metrics", {"name": "web-app"}).verdict == "allow"
    division = load_policy(write(tmp_path, BASE.replace("replicas > 10", "100 / (replicas - 5) > 10")), tools=TOOLS)
    by_zero = division.evaluate("scale_deployment", {"name": "web", "replicas": 5}, rate=MemoryRateCounter())
    assert by_zero.verdict == "deny" and "ZeroDivisionError" in by_zero.reason


def test_arguments_of_the_wrong_type_at_run_time_deny_rather_than_compare_false(tmp_path: Path) -> None:
    """A tool without a pydantic schema passes its arguments as given: '20' > 10 must not be quietly false."""
    policy = load_policy(write(tmp_path, BASE), tools=TOOLS)
    for replicas in ("20", True, [20]):
        verdict = policy.evaluate("scale_deployment", {"name": "web", "replicas": replicas})
        assert verdict.verdict == "deny", replicas
    assert policy.evaluate("scale_deployment", {"name": "web"}).verdict == "deny", "a missing argument denies"


def test_the_evaluator_refuses_what_python_would_let_slide() -> None:
    for source, names in [("x > 1", {"x": "2"}), ("x == 1", {"x": True}), ("x and True", {"x": 1}),
                          ("not x", {"x": 0}), ("x * 2", {"x": "ab"}), ("y > 1", {}), ("x in 3", {"x": 3})]:
        with pytest.raises(ExpressionError):
            evaluate_condition(source, names)
    for source in ["__import__('os')", "x.__class__", "[c for c in x]", "x if x else y", "lambda: 1", "x ** 99",
                   "b'bytes'", "f'{x}'", "x[0]", "min(*x)", "max(x, key=len)"]:
        with pytest.raises(ExpressionError):
            evaluate(source, {"x": [1]})
    assert evaluate("min(replicas * 2, 20)", {"replicas": 7}) == 14
    assert evaluate_condition('to in ["a@x", "b@x"] and cc == []', {"to": ["a@x"], "cc": []}) is True
    assert evaluate_condition('to in ["a@x"]', {"to": ["a@x", "evil@y"]}) is False


def test_policy_check_on_the_cli_names_the_line_and_exits_2(ops_project: Path) -> None:
    assert agentops("policy", "check").returncode == 0
    policy = ops_project / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("if: replicas > 10", "if: replicaz > 10"))
    done = agentops("policy", "check")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: policies/default.yaml:22: tools.scale_deployment.when.0.if: 'replicaz > 10': unknown name 'replicaz' "
        "(did you mean 'replicas'? known: name, replicas)"]
    single = agentops("policy", "check", str(policy))
    assert single.returncode == 2 and f"{policy}:22:" in single.stderr


def test_an_agent_under_a_broken_policy_runs_nothing(ops_project: Path) -> None:
    from agentops import flow
    from agentops.agents import Agent
    from agentops.db import open_store
    from agentops.errors import RunFailed

    policy = ops_project / "policies" / "default.yaml"
    policy.write_text(policy.read_text().replace("if: replicas > 10", "if: replicas > '10'"))

    @flow(name="broken_policy_scale")
    def broken_policy_scale() -> str:
        return Agent(name="ops", prompt="incident", tools=["scale_deployment"]).use(
            "scale_deployment", name="web-app", replicas=20).status

    with pytest.raises(RunFailed, match=r"policies/default\.yaml:22: .*cannot order number against string"):
        broken_policy_scale()
    assert open_store().scale_events() == []
    run = open_store().list_runs()[0]
    assert json.loads(run.result or "null") is None and run.state == "FAILED"
