"""Declarative, versioned policy: per-tool verdicts, argument constraints, `when` conditions, rate limits
and per-run budgets, loaded from policies/*.yaml and validated with line numbers.

Anything not named is denied. Every verdict carries the policy's content hash and the rule that decided it.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentops.engine.context import BudgetUsage
from agentops.errors import ConfigError

VerdictKind = Literal["allow", "require_approval", "deny"]


class Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    regex: str | None = None
    max_length: int | None = None
    email_domains: list[str] | None = None
    hosts: list[str] | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return value


class WhenRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    condition: str = Field(alias="if")
    verdict: VerdictKind
    reason: str = ""

    @field_validator("condition")
    @classmethod
    def _safe(cls, value: str) -> str:
        check_condition(value)
        return value


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: int = Field(ge=1)
    per_seconds: float = Field(gt=0)
    key: str | list[str] | None = None


class ToolRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: VerdictKind
    reason: str = ""
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    when: list[WhenRule] = Field(default_factory=list)
    rate_limit: RateLimit | None = None
    self_approval: bool = False
    """The person behind a run (its creator, or the requester) may decide its calls of this tool (recorded)."""


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_model_calls: int | None = None
    max_tool_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    shadow: bool = False
    budgets: Budgets = Field(default_factory=Budgets)
    tools: dict[str, ToolRule] = Field(default_factory=dict)


# -- safe conditions -------------------------------------------------------------------------------

_ALLOWED_NODES = (ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
                  ast.Name, ast.Attribute, ast.Constant, ast.List, ast.Tuple, ast.Load, ast.Eq, ast.NotEq, ast.Lt,
                  ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


def check_condition(source: str) -> ast.Expression:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"condition {source!r} is not valid: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"condition {source!r} uses {type(node).__name__}, which is not allowed "
                             "(only comparisons, and/or/not, names, numbers, strings and lists)")
    return tree


def _lookup(node: ast.AST, args: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return args.get(node.id)
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "args":
            return args.get(node.attr)
        base = _lookup(node.value, args)
        return base.get(node.attr) if isinstance(base, dict) else None
    raise ValueError("not a name")


def evaluate_condition(tree: ast.Expression, args: dict[str, Any]) -> bool:
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name | ast.Attribute):
            return _lookup(node, args)
        if isinstance(node, ast.List | ast.Tuple):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            return (not value) if isinstance(node.op, ast.Not) else -value
        if isinstance(node, ast.BoolOp):
            values = (ev(v) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = ev(comp)
                try:
                    ok = _compare(op, left, right)
                except TypeError:
                    return False
                if not ok:
                    return False
                left = right
            return True
        raise ValueError(f"unsupported {type(node).__name__}")

    return bool(ev(tree))


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, ast.In | ast.NotIn):
        found = all(item in right for item in left) if isinstance(left, list) else left in right
        return found if isinstance(op, ast.In) else not found
    if left is None or right is None:
        return isinstance(op, ast.NotEq) != (left == right) if isinstance(op, ast.Eq | ast.NotEq) else False
    return {ast.Eq: lambda: left == right, ast.NotEq: lambda: left != right, ast.Lt: lambda: left < right,
            ast.LtE: lambda: left <= right, ast.Gt: lambda: left > right, ast.GtE: lambda: left >= right}[type(op)]()


# -- verdicts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictKind
    rule: str
    reason: str
    policy_hash: str
    enforced: bool = True


class RateCounter(Protocol):
    def count(self, key: str, since: float) -> int: ...
    def add(self, key: str, ts: float) -> None: ...


class MemoryRateCounter:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def count(self, key: str, since: float) -> int:
        return sum(1 for k, ts in self.events if k == key and ts >= since)

    def add(self, key: str, ts: float) -> None:
        self.events.append((key, ts))


def _constraint_problem(name: str, value: Any, c: Constraint) -> str | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    for item in values:
        if c.min is not None and isinstance(item, int | float) and item < c.min:
            return f"{name}={item} is below min {c.min:g}"
        if c.max is not None and isinstance(item, int | float) and item > c.max:
            return f"{name}={item} exceeds max {c.max:g}"
        if c.enum is not None and item not in c.enum:
            return f"{name}={item!r} is not one of {c.enum}"
        if c.regex is not None and not re.fullmatch(c.regex, str(item)):
            return f"{name}={item!r} does not match {c.regex!r}"
        if c.max_length is not None and len(str(item)) > c.max_length:
            return f"{name} is longer than {c.max_length} characters"
        if c.email_domains is not None:
            domain = str(item).rsplit("@", 1)[-1].lower() if "@" in str(item) else ""
            if domain not in [d.lower() for d in c.email_domains]:
                return f"{name}: recipient {item!r} is outside the allowed domains {c.email_domains}"
        if c.hosts is not None:
            host = urlparse(str(item)).hostname or ""
            if host not in c.hosts:
                return f"{name}: host {host!r} is not in the allowlist {c.hosts}"
    return None


class Policy:
    """A loaded policy (one file, or several merged). Immutable; its hash names its exact content."""

    def __init__(self, name: str, data: PolicyFile, content_hash: str, sources: dict[str, str] | None = None) -> None:
        self.name = name
        self.data = data
        self.hash = content_hash
        self.rules = data.tools
        self.budgets = data.budgets
        self.shadow = data.shadow
        self.sources = sources or {}
        self._conditions = {(tool, i): check_condition(w.condition)
                            for tool, rule in data.tools.items() for i, w in enumerate(rule.when)}

    def _verdict(self, kind: VerdictKind, rule: str, reason: str) -> Verdict:
        return Verdict(kind, rule, reason, self.hash, enforced=not self.shadow)

    def evaluate(self, action: str, args: dict[str, Any], *, rate: RateCounter | None = None,
                 now: float | None = None) -> Verdict:
        import time

        rule = self.rules.get(action)
        if rule is None:
            return self._verdict("deny", "default-deny", f"'{action}' is not named in the policy")
        for arg, constraint in rule.constraints.items():
            problem = _constraint_problem(arg, args.get(arg), constraint)
            if problem:
                return self._verdict("deny", f"tools.{action}.constraints.{arg}", problem)
        kind, name, reason = rule.verdict, f"tools.{action}", rule.reason or f"{action} is {rule.verdict}"
        for i, when in enumerate(rule.when):
            if evaluate_condition(self._conditions[(action, i)], args):
                kind, name, reason = when.verdict, f"tools.{action}.when[{i}]", when.reason or when.condition
                break
        if kind != "deny" and rule.rate_limit is not None and rate is not None:
            now = time.time() if now is None else now
            keys = [rule.rate_limit.key] if isinstance(rule.rate_limit.key, str) else (rule.rate_limit.key or [])
            key = f"{self.name}:{action}:" + ",".join(f"{k}={args.get(k)}" for k in keys)
            used = rate.count(key, now - rule.rate_limit.per_seconds)
            if used >= rule.rate_limit.max:
                return self._verdict("deny", f"tools.{action}.rate_limit",
                                     f"rate limit: {used} of {rule.rate_limit.max} {action} calls used in the last "
                                     f"{rule.rate_limit.per_seconds:g} s for {key.split(':', 2)[2] or action}")
            rate.add(key, now)
        return self._verdict(kind, name, reason)

    def check_budget(self, usage: BudgetUsage) -> str | None:
        b = self.budgets
        checks = [("model calls", usage.model_calls, b.max_model_calls), ("tool calls", usage.tool_calls,
                  b.max_tool_calls), ("tokens", usage.tokens, b.max_tokens), ("cost (USD)", usage.cost_usd,
                  b.max_cost_usd)]
        for label, used, limit in checks:
            if limit is not None and used >= limit:
                return f"budget exhausted: {used:g} {label} used of {limit:g} allowed for this run"
        return None


# -- loading ---------------------------------------------------------------------------------------


def _key_lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Line number (1-based) of every mapping key and sequence item, by its path."""
    lines: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            here = (*path, key_node.value)
            lines[here] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            lines.update(_key_lines(item, (*path, i)))
    return lines


def _parse(text: str, label: str) -> PolicyFile:
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{label}{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}:1: a policy file must be a mapping with 'tools:'")
    try:
        return PolicyFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after",)))
        lines = _key_lines(node) if node is not None else {}
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)
        where = ".".join(str(p) for p in loc)
        got = f" (got {err['input']!r})" if err["type"] not in ("missing", "extra_forbidden") else ""
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{label}:{line}: {where}: {msg}{got}") from None


def load_policy(path: Path) -> Policy:
    if not path.is_file():
        raise ConfigError(f"no policy file at {path}")
    text = path.read_text()
    return Policy(path.stem, _parse(text, str(path)), hashlib.sha256(text.encode()).hexdigest(), {str(path): text})


def policy_files(root: Path) -> list[Path]:
    return sorted(p for p in [*root.glob("policies/*.yaml"), *root.glob("prompts/policies/*.yaml")]
                  if not p.name.endswith(".cases.yaml"))


def load_project_policy(root: Path) -> Policy:
    """All policy files merged in name order; the hash covers every file. No files: everything is denied."""
    merged = PolicyFile()
    digest = hashlib.sha256()
    sources: dict[str, str] = {}
    for path in policy_files(root):
        text = path.read_text()
        label = str(path.relative_to(root))
        part = _parse(text, label)
        for name in part.tools:
            if name in merged.tools:
                raise ConfigError(f"{label}: tool '{name}' is already defined by another policy file")
        merged.tools.update(part.tools)
        merged.shadow = merged.shadow or part.shadow
        for field_name in Budgets.model_fields:
            if getattr(part.budgets, field_name) is not None:
                setattr(merged.budgets, field_name, getattr(part.budgets, field_name))
        digest.update(label.encode() + b"\0" + text.encode() + b"\0")
        sources[label] = text
    return Policy("project", merged, digest.hexdigest(), sources)


@dataclass(frozen=True)
class CaseResult:
    action: str
    args: dict[str, Any]
    expected: str
    actual: str
    rule: str
    expected_rule: str | None

    @property
    def passed(self) -> bool:
        return self.expected == self.actual and (self.expected_rule is None or self.expected_rule == self.rule)

    def __str__(self) -> str:
        want = self.expected + (f" by {self.expected_rule}" if self.expected_rule else "")
        return f"{self.action}({self.args}): expected {want}, got {self.actual} by {self.rule}"


def run_policy_cases(policy: Policy, cases_path: Path) -> list[CaseResult]:
    """Each case: {action, args, expect: verdict, rule?}. Rate windows start empty for every case."""
    data = yaml.safe_load(cases_path.read_text()) or {}
    cases: Iterable[dict[str, Any]] = data.get("cases", data) if isinstance(data, dict) else data
    results = []
    for case in cases:
        verdict = policy.evaluate(case["action"], case.get("args") or {}, rate=MemoryRateCounter(), now=0.0)
        results.append(CaseResult(case["action"], case.get("args") or {}, case["expect"], verdict.verdict,
                                  verdict.rule, case.get("rule")))
    return results
