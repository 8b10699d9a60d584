"""Declarative, versioned policy: per-tool verdicts, argument constraints, `when` conditions, rate limits
and per-run budgets, loaded from policies/*.yaml and validated with line numbers.

Every load checks the policy against the tools it names: each tool must exist, each constraint key, rate
key and name in a condition must be one of the tool's arguments, and each comparison must fit the
argument types of the tool's schema (core/expressions.py does the typing). The first problem is one
`file:line: ...` error. At run time, a condition that cannot be evaluated denies.

Anything not named is denied. Every verdict carries the policy's content hash and the rule that decided it.
`fallback:` (top level, or per tool) says what becomes of a call proposed by the playbook model standing in for
an unreachable one: screened like any call, sent to a person, or denied.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentops.core.expressions import (
    BOOLEAN,
    ExpressionError,
    Type,
    can_equal,
    check_types,
    evaluate_condition,
    parse,
    type_of,
    types_from_json_schema,
)
from agentops.core.yaml_files import Lines, line_of, parse_yaml
from agentops.engine.context import BudgetUsage
from agentops.errors import ConfigError
from agentops.governance.addresses import AddressError, domain_pattern, parse_address, recipient_problem
from agentops.governance.urls import parse_host_entry, url_problem

VerdictKind = Literal["allow", "require_approval", "deny"]
Channel = Literal["slack", "email"]
"""Where approvers are told of a request: the Slack-compatible webhook (AGENTOPS_SLACK_WEBHOOK_URL), or email."""
FallbackRule = Literal["policy", "require_approval", "deny"]
"""What becomes of a call proposed by the playbook model standing in for an unreachable one: the same verdict
as any call (`policy`, the default), sent to a person when the policy would allow it, or denied."""
_FALLBACK_ORDER: tuple[FallbackRule, ...] = ("policy", "require_approval", "deny")


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

    @field_validator("email_domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [domain_pattern(d) for d in value]

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [str(parse_host_entry(h)) for h in value]


class WhenRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    condition: str = Field(alias="if")
    verdict: VerdictKind
    reason: str = ""

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse(value)
        return value


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: int = Field(ge=1)
    per_seconds: float = Field(gt=0)
    key: str | list[str] | None = None


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: object) -> float:
    """`90s`, `15m`, `1.5h`, `2d` or a number of seconds, as seconds (more than zero)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 15m, 90s, 1h, 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (a number of seconds or a text like 15m, 90s, 1h, 2d)")
    if not 0 < seconds < 366 * 86400:
        raise ValueError(f"{value!r}: a duration is more than zero and less than a year")
    return seconds


class ToolRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: VerdictKind
    reason: str = ""
    constraints: dict[str, Constraint] = Field(default_factory=dict)
    when: list[WhenRule] = Field(default_factory=list)
    rate_limit: RateLimit | None = None
    self_approval: bool = False
    """The person behind a run (its creator, or the requester) may decide its calls of this tool (recorded)."""
    fallback: FallbackRule | None = None
    """Overrides the top-level `fallback:` for this tool."""
    notify: list[Channel] = Field(default_factory=list)
    """Channels that tell approvers when a call of this tool starts waiting for approval."""
    notify_to: list[str] = Field(default_factory=list)
    """Who is told: groups of `notifications.groups`, account names, or email addresses."""
    remind_before: float | None = None
    """Seconds (or `15m`) before a request's expiry when the same people are reminded."""
    escalate_after: float | None = None
    """Seconds (or `30m`) after which a request nobody decided is sent to `escalate_to` as well."""
    escalate_to: list[str] = Field(default_factory=list)

    @field_validator("remind_before", "escalate_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else duration_seconds(value)


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_model_calls: int | None = None
    max_tool_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None


class Notifications(BaseModel):
    """Who approval notifications go to, and where the Slack webhook may point."""

    model_config = ConfigDict(extra="forbid")

    groups: dict[str, list[str]] = Field(default_factory=dict)
    """Named groups of members: account names (who can decide, if their role allows) and email addresses."""
    webhook_hosts: list[str] = Field(default_factory=list)
    """host or host:port entries the Slack webhook URL must name (agentops.governance.urls); empty refuses every
    webhook."""

    @field_validator("webhook_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [str(parse_host_entry(h)) for h in value]

    @field_validator("groups")
    @classmethod
    def _members(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, members in value.items():
            if not members:
                raise ValueError(f"group '{group}' has no members")
            for member in members:
                if (problem := member_problem(member)) is not None:
                    raise ValueError(f"group '{group}': {problem}")
        return value


def member_problem(member: object) -> str | None:
    """Why `member` cannot be told of a request: neither an account name nor one plain email address."""
    if not isinstance(member, str):
        return f"a member is a text, got {type(member).__name__}"
    if "@" in member:
        try:
            parse_address(member)
        except AddressError as exc:
            return str(exc)
        return None
    if not member or not member.replace("-", "").replace("_", "").replace(".", "").isalnum():
        return f"'{member}' is not an account name (letters, digits, '-', '_', '.') or an email address"
    return None


def is_address(member: str) -> bool:
    return "@" in member and member_problem(member) is None


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    shadow: bool = False
    fallback: FallbackRule = "policy"
    budgets: Budgets = Field(default_factory=Budgets)
    notifications: Notifications = Field(default_factory=Notifications)
    tools: dict[str, ToolRule] = Field(default_factory=dict)


# -- verdicts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictKind
    rule: str
    reason: str
    policy_hash: str
    enforced: bool = True


class RateCounter(Protocol):
    def take(self, key: str, limit: int, window: float, *, now: float | None = None,
             use_id: str | None = None) -> tuple[bool, int]:
        """In one atomic step: count the uses of `key` in the last `window` seconds and, when fewer than
        `limit`, record this one. Returns (taken, uses counted before it). A `use_id` already recorded is
        the same use again (a step run a second time): taken, nothing recorded."""
        ...


class MemoryRateCounter:
    """Rate windows in memory, for `agentops policy test` and the tests (one thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, str | None]] = []

    def take(self, key: str, limit: int, window: float, *, now: float | None = None,
             use_id: str | None = None) -> tuple[bool, int]:
        now = time.time() if now is None else now
        if use_id is not None and any(u == use_id for _, _, u in self.events):
            return True, 0
        used = sum(1 for k, ts, _ in self.events if k == key and ts >= now - window)
        if used >= limit:
            return False, used
        self.events.append((key, now, use_id))
        return True, used


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
        if c.email_domains is not None and (problem := recipient_problem(item, c.email_domains)):
            return f"{name}: {problem}"
        if c.hosts is not None and (problem := url_problem(item, c.hosts)):
            return f"{name}: {problem}"
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
        self._conditions = {(tool, i): parse(w.condition)
                            for tool, rule in data.tools.items() for i, w in enumerate(rule.when)}

    def _verdict(self, kind: VerdictKind, rule: str, reason: str) -> Verdict:
        return Verdict(kind, rule, reason, self.hash, enforced=not self.shadow)

    def evaluate(self, action: str, args: dict[str, Any], *, rate: RateCounter | None = None,
                 now: float | None = None, use_id: str | None = None, fallback: bool = False) -> Verdict:
        """The verdict on one proposed call. With `rate`, a call the policy lets through (allowed, or sent for
        approval) takes a slot of its rate window in the same step; a later rejection does not give it back.
        A condition that cannot be evaluated denies (fail closed), and the verdict says why. `fallback`: the
        call was proposed by the playbook model standing in for an unreachable one (the `fallback:` rule)."""
        rule = self.rules.get(action)
        if rule is None:
            return self._verdict("deny", "default-deny", f"'{action}' is not named in the policy")
        for arg, constraint in rule.constraints.items():
            try:
                problem = _constraint_problem(arg, args.get(arg), constraint)
            except Exception as exc:
                problem = f"{arg}: the constraint could not be checked ({type(exc).__name__}: {exc})"
            if problem:
                return self._verdict("deny", f"tools.{action}.constraints.{arg}", problem)
        kind, name, reason = rule.verdict, f"tools.{action}", rule.reason or f"{action} is {rule.verdict}"
        for i, when in enumerate(rule.when):
            try:
                hit = evaluate_condition(self._conditions[(action, i)], args)
            except Exception as exc:
                detail = str(exc) if isinstance(exc, ExpressionError) else f"{type(exc).__name__}: {exc}"
                return self._verdict("deny", f"tools.{action}.when[{i}]", f"condition {when.condition!r} could "
                                     f"not be evaluated, so the call is denied: {detail}")
            if hit:
                kind, name, reason = when.verdict, f"tools.{action}.when[{i}]", when.reason or when.condition
                break
        if fallback and kind != "deny":
            where = f"tools.{action}.fallback" if rule.fallback is not None else "fallback"
            mode = rule.fallback or self.data.fallback
            why = "proposed by the playbook model standing in for the unreachable configured model"
            if mode == "deny":
                return self._verdict("deny", where, f"{why}; the policy denies such calls")
            if mode == "require_approval" and kind == "allow":
                kind, name, reason = "require_approval", where, f"{why}; the policy sends such calls to a person"
        limit = rule.rate_limit
        if kind != "deny" and limit is not None and rate is not None:
            keys = [limit.key] if isinstance(limit.key, str) else (limit.key or [])
            scope = ",".join(f"{k}={args.get(k)}" for k in keys)
            taken, used = rate.take(_rate_key(f"{self.name}:{action}:{scope}"), limit.max, limit.per_seconds,
                                    now=now, use_id=use_id)
            if not taken:
                return self._verdict("deny", f"tools.{action}.rate_limit",
                                     f"rate limit: {used} of {limit.max} {action} calls used in the last "
                                     f"{limit.per_seconds:g} s for {scope or action}")
        return self._verdict(kind, name, reason)

    def check_budget(self, usage: BudgetUsage, only: Iterable[str] | None = None) -> str | None:
        """Why the run may not start another step, or None: a budget whose use has reached its limit.
        `only` names the BudgetUsage fields to check (all four by default)."""
        b = self.budgets
        checks = [("model_calls", "model calls", b.max_model_calls), ("tool_calls", "tool calls", b.max_tool_calls),
                  ("tokens", "tokens", b.max_tokens), ("cost_usd", "cost (USD)", b.max_cost_usd)]
        wanted = set(only) if only is not None else None
        for field_name, label, limit in checks:
            used = getattr(usage, field_name)
            if limit is not None and (wanted is None or field_name in wanted) and used >= limit:
                return f"budget exhausted: {used:g} {label} used of {limit:g} allowed for this run"
        return None


def _rate_key(key: str) -> str:
    """The key as stored (at most 300 characters: a long one keeps its start and gains a digest)."""
    if len(key) <= 300:
        return key
    return key[:235] + "#" + hashlib.sha256(key.encode()).hexdigest()


# -- loading ---------------------------------------------------------------------------------------


ToolTypes = Mapping[str, Mapping[str, Type]]
"""The type of each argument of each tool, by tool name (see `project_tool_types`)."""


def _parse(text: str, label: str) -> tuple[PolicyFile, Lines]:
    return parse_yaml(text, label, PolicyFile, not_mapping="a policy file must be a mapping with 'tools:'")


# -- checking against the tools --------------------------------------------------------------------

_STRING_CHECKS = ("regex", "max_length", "email_domains", "hosts")


def _problem_with_tools(data: PolicyFile, tools: ToolTypes) -> tuple[tuple[Any, ...], str] | None:
    """The first name or type in the policy that the tools' argument schemas contradict: (path, message)."""
    for tool, rule in data.tools.items():
        if tool not in tools:
            close = difflib.get_close_matches(tool, list(tools), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            return ("tools", tool), f"unknown tool '{tool}' ({hint}known: {', '.join(sorted(tools)) or 'none'})"
        args = tools[tool]
        known = f"{tool} takes: {', '.join(sorted(args)) or 'no arguments'}"
        for arg, c in rule.constraints.items():
            where = ("tools", tool, "constraints", arg)
            if arg not in args:
                return where, f"unknown argument '{arg}' ({known})"
            declared = args[arg]
            element = declared.item if declared.kind == "list" and declared.item is not None else declared
            if element.kind == "any":
                continue
            if (c.min is not None or c.max is not None) and element.kind != "number":
                return where, f"min/max apply to numbers, and '{arg}' is a {args[arg]}"
            named = [k for k in _STRING_CHECKS if getattr(c, k) is not None]
            if named and element.kind != "string":
                return where, f"{named[0]} applies to strings, and '{arg}' is a {args[arg]}"
            for value in c.enum or []:
                if not can_equal(type_of(value), element):
                    return where, f"enum value {value!r} can never equal '{arg}', which is a {args[arg]}"
        for i, when in enumerate(rule.when):
            try:
                check_types(when.condition, args, want=BOOLEAN)
            except ExpressionError as exc:
                return ("tools", tool, "when", i, "if"), str(exc)
        if rule.rate_limit is not None:
            keys = [rule.rate_limit.key] if isinstance(rule.rate_limit.key, str) else rule.rate_limit.key or []
            for key in keys:
                if key not in args:
                    return ("tools", tool, "rate_limit", "key"), f"unknown argument '{key}' ({known})"
    return None


def project_tool_types(root: Path) -> ToolTypes:
    """The argument types of every tool an agent of this project can be given (tools/*.py, start_flow, and the
    tools of the MCP servers in mcp.yaml). An MCP server is listed only when a policy names one of its tools, so a
    server that is down fails only the policies that name it."""
    from agentops.engine.toolkit import tool_argument_schemas

    local = {name: types_from_json_schema(schema) for name, schema in tool_argument_schemas(root, mcp_servers=[])
             .items()}
    return _WithMcpTools(root, local)


class _WithMcpTools(Mapping[str, Mapping[str, Type]]):
    """Local tool types, and an MCP server's tool types listed on the first look-up of a `server.` name."""

    def __init__(self, root: Path, local: Mapping[str, Mapping[str, Type]]) -> None:
        self.root, self.local = root, local
        self.listed: dict[str, dict[str, Mapping[str, Type]]] = {}

    def _of(self, name: str) -> dict[str, Mapping[str, Type]]:
        from agentops.engine import mcp

        server = mcp.split_name(name)[0]
        if "." not in name or server not in mcp.mcp_servers(self.root):
            return {}
        if server not in self.listed:
            schemas = mcp.tool_schemas(self.root, [server])
            self.listed[server] = {q: types_from_json_schema(s) for q, s in schemas.items()}
        return self.listed[server]

    def __getitem__(self, name: str) -> Mapping[str, Type]:
        return self.local[name] if name in self.local else self._of(name)[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.local or name in self._of(name))

    def __iter__(self) -> Iterator[str]:
        yield from self.local
        for server in self.listed:
            yield from self.listed[server]

    def __len__(self) -> int:
        return len(self.local) + sum(len(t) for t in self.listed.values())


def _notification_problem(data: PolicyFile) -> tuple[tuple[Any, ...], str] | None:
    """The first notification setting of a tool that cannot work: an unknown member or group, email with no
    address to send to, a reminder or escalation without a channel, an escalation without its other half."""
    groups = data.notifications.groups

    def expanded(names: list[str]) -> list[str]:
        return [m for n in names for m in groups.get(n, [n])]

    for tool, rule in data.tools.items():
        where: tuple[Any, ...] = ("tools", tool)
        if len(set(rule.notify)) != len(rule.notify):
            return (*where, "notify"), "a channel is named twice"
        for key in ("notify_to", "escalate_to"):
            for i, name in enumerate(getattr(rule, key)):
                if name not in groups and (problem := member_problem(name)) is not None:
                    return (*where, key, i), f"{problem}, nor a group of notifications.groups " \
                                             f"({', '.join(sorted(groups)) or 'none defined'})"
        told = rule.notify_to or rule.escalate_to or rule.remind_before or rule.escalate_after
        if told and not rule.notify:
            return (*where, "notify"), "notify_to, remind_before and escalation need channels: notify: [slack, email]"
        if bool(rule.escalate_after) != bool(rule.escalate_to):
            return (*where, "escalate_after" if rule.escalate_to else "escalate_to"), \
                "an escalation needs both escalate_after (when) and escalate_to (who)"
        if "email" in rule.notify:
            for key in ("notify_to", "escalate_to"):
                names = getattr(rule, key)
                if (names or key == "notify_to") and not any(is_address(m) for m in expanded(names)):
                    return (*where, key), "the email channel needs at least one email address here " \
                                          "(directly or in a group)"
    return None


def _checked(text: str, label: str, tools: ToolTypes | Callable[[], ToolTypes]) -> PolicyFile:
    data, lines = _parse(text, label)
    problem = _notification_problem(data)
    if problem is not None:
        path, message = problem
        raise ConfigError(f"{label}:{line_of(lines, path)}: {'.'.join(map(str, path))}: {message}")
    if data.tools:
        found = _problem_with_tools(data, tools() if callable(tools) else tools)
        if found is not None:
            path, message = found
            raise ConfigError(f"{label}:{line_of(lines, path)}: {'.'.join(map(str, path))}: {message}")
    return data


def load_policy(path: Path, *, tools: ToolTypes | None = None) -> Policy:
    """One policy file, checked against `tools` (default: the tools of the current project)."""
    if not path.is_file():
        raise ConfigError(f"no policy file at {path}")
    text = _read(path, str(path))

    def project_tools() -> ToolTypes:
        from agentops.engine.project import project_root

        return project_tool_types(project_root())

    data = _checked(text, str(path), tools if tools is not None else project_tools)
    return Policy(path.stem, data, hashlib.sha256(text.encode()).hexdigest(), {str(path): text})


def _read(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read the policy file: {exc}") from None


def policy_files(root: Path) -> list[Path]:
    return sorted(p for p in [*root.glob("policies/*.yaml"), *root.glob("prompts/policies/*.yaml")]
                  if not p.name.endswith(".cases.yaml"))


def load_project_policy(root: Path, *, tools: ToolTypes | None = None) -> Policy:
    """All policy files merged in name order, each checked against the project's tools (or `tools`); the hash
    covers every file. No files: everything is denied."""
    merged = PolicyFile()
    digest = hashlib.sha256()
    sources: dict[str, str] = {}
    known: list[ToolTypes] = [tools] if tools is not None else []

    def project_tools() -> ToolTypes:
        if not known:
            known.append(project_tool_types(root))
        return known[0]

    for path in policy_files(root):
        label = str(path.relative_to(root))
        text = _read(path, label)
        part = _checked(text, label, project_tools)
        for name in part.tools:
            if name in merged.tools:
                raise ConfigError(f"{label}: tool '{name}' is already defined by another policy file")
        merged.tools.update(part.tools)
        for group, members in part.notifications.groups.items():
            if merged.notifications.groups.get(group, members) != members:
                raise ConfigError(f"{label}: notifications group '{group}' is already defined differently by "
                                  "another policy file")
            merged.notifications.groups[group] = members
        merged.notifications.webhook_hosts += [h for h in part.notifications.webhook_hosts
                                               if h not in merged.notifications.webhook_hosts]
        merged.shadow = merged.shadow or part.shadow
        merged.fallback = max(merged.fallback, part.fallback, key=_FALLBACK_ORDER.index)
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
    """Each case: {action, args, expect: verdict, rule?, fallback?}. Rate windows start empty for every case;
    `fallback: true` screens the call as one proposed by the playbook model standing in for an unreachable one."""
    data = yaml.safe_load(cases_path.read_text()) or {}
    cases: Iterable[dict[str, Any]] = data.get("cases", data) if isinstance(data, dict) else data
    results = []
    for case in cases:
        verdict = policy.evaluate(case["action"], case.get("args") or {}, rate=MemoryRateCounter(), now=0.0,
                                  fallback=bool(case.get("fallback")))
        results.append(CaseResult(case["action"], case.get("args") or {}, case["expect"], verdict.verdict,
                                  verdict.rule, case.get("rule")))
    return results
