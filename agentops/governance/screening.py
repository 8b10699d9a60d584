"""Governance of proposed tool calls, enforced outside the model: whitelist, schema, policy, approvals.

The project's policy (policies/*.yaml) is loaded once per content version; rate windows count in
the database so they hold across processes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentops.core.serialization import non_finite_at
from agentops.db import Store
from agentops.engine import mcp
from agentops.engine.flows import describe_validation_error
from agentops.engine.project import project_root
from agentops.engine.toolkit import find_tool
from agentops.errors import PolicyViolation
from agentops.governance.mcp_pins import pin_first_use, pin_problem
from agentops.governance.policy import load_project_policy

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from agentops.governance.policy import Policy


class StoreRateCounter:
    """Policy rate windows counted in the database, shared by every worker: see `Store.take_rate`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def take(self, key: str, limit: int, window: float, *, now: float | None = None,
             use_id: str | None = None) -> tuple[bool, int]:
        return self.store.take_rate(key, limit, window, now=now, use_id=use_id)


_policies: dict[Path, tuple[tuple[tuple[str, float], ...], Policy]] = {}


def project_policy(root: Path) -> Policy:
    """The project's policy, reloaded when any policy file changes."""
    files = sorted([*root.glob("policies/*.yaml"), *root.glob("prompts/policies/*.yaml")])
    stamp = tuple((str(f), f.stat().st_mtime) for f in files)
    cached = _policies.get(root)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_project_policy(root))
        _policies[root] = cached
    return cached[1]


@dataclass(frozen=True)
class Screening:
    """The outcome of screening one proposed call before anything runs."""

    status: str
    """allow | require_approval | refused"""
    args: dict[str, Any]
    reason: str
    verdict: dict[str, Any] | None = None
    policy_hash: str | None = None


def validate_args(tool: BaseTool, args: Any) -> dict[str, Any]:
    """Arguments checked against the tool's pydantic schema; ValueError with a readable message otherwise."""
    from pydantic import BaseModel, ValidationError

    if not isinstance(args, dict):
        raise ValueError(f"arguments must be an object, got {type(args).__name__}")
    if (at := non_finite_at(args, "arguments")) is not None:
        raise ValueError(f"{at} is NaN or an infinity, which a tool call cannot carry")
    schema = tool.args_schema
    if mcp.definition_of(tool) is not None:
        return _validate_json_schema(schema, args)
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(args).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc).replace("parameter", "argument")) from None
    return args


def _validate_json_schema(schema: Any, args: dict[str, Any]) -> dict[str, Any]:
    """An MCP tool's arguments checked against its JSON Schema; the definition binding is set by `screen` alone."""
    from jsonschema import validators
    from jsonschema.exceptions import SchemaError

    clean = {k: v for k, v in args.items() if k != mcp.DEFINITION_KEY}
    try:
        validator = validators.validator_for(schema)(schema)
        error = next(iter(sorted(validator.iter_errors(clean), key=lambda e: list(e.path))), None)
    except SchemaError as exc:
        raise ValueError(f"the server's input schema is not valid: {exc.message}") from None
    if error is not None:
        where = ".".join(str(p) for p in error.path)
        raise ValueError(f"{where + ': ' if where else ''}{error.message}")
    return clean


def screen(tool_name: str, args: Any, *, whitelist: dict[str, BaseTool], policy: Policy, store: Store,
           shadow: bool = False, use_id: str | None = None, fallback: bool = False) -> Screening:
    """Whitelist, then schema, then policy. Nothing the model says can skip a check.

    A call the policy lets through takes its rate slot here, atomically; `use_id` (the policy step,
    "run_id:step_no") makes that step, run again after a crash, keep its slot instead of taking another.
    `fallback`: the playbook model proposed the call, standing in for an unreachable model; the policy's
    `fallback:` rule applies (e.g. every such call goes to a person).
    """
    if tool_name not in whitelist:
        allowed = ", ".join(sorted(whitelist)) or "none"
        return Screening("refused", args if isinstance(args, dict) else {}, f"tool '{tool_name}' is not available "
                         f"to this agent (allowed: {allowed})", {"verdict": "deny", "rule": "whitelist"})
    tool = whitelist[tool_name]
    definition = mcp.definition_of(tool)
    if definition is not None:
        problem = pin_problem(store, definition)
        if problem is not None:
            return Screening("refused", args if isinstance(args, dict) else {}, problem,
                             {"verdict": "deny", "rule": "mcp.pin", "mcp": _shown(definition)})
    try:
        clean = validate_args(tool, args)
    except ValueError as exc:
        return Screening("refused", args if isinstance(args, dict) else {}, f"invalid arguments for "
                         f"'{tool_name}': {exc}", {"verdict": "deny", "rule": "schema"})
    if definition is not None:
        clean[mcp.DEFINITION_KEY] = definition.digest
    verdict = policy.evaluate(tool_name, clean, rate=StoreRateCounter(store), use_id=use_id, fallback=fallback)
    if definition is not None and verdict.verdict == "allow" and definition.hint("destructiveHint"):
        verdict = replace(verdict, verdict="require_approval", rule="mcp.annotations.destructiveHint",
                          reason=f"the server marks {tool_name} destructive; {verdict.reason}")
    record = {k: v for k, v in asdict(verdict).items()}
    enforced = verdict.enforced and not shadow
    record["enforced"] = enforced
    if definition is not None:
        record["mcp"] = _shown(definition)
        if not enforced or verdict.verdict != "deny":
            pin_first_use(store, definition)
    if not enforced or verdict.verdict == "allow":
        return Screening("allow", clean, verdict.reason, record, verdict.policy_hash)
    if verdict.verdict == "deny":
        return Screening("refused", clean, f"policy denied '{tool_name}': {verdict.reason} (rule {verdict.rule})",
                         record, verdict.policy_hash)
    return Screening("require_approval", clean, verdict.reason, record, verdict.policy_hash)


def _shown(definition: mcp.ToolDefinition) -> dict[str, Any]:
    """What approvers see of an MCP tool: the server's own words, marked as not verified."""
    return {"server": definition.server, "tool": definition.name, "digest": definition.digest,
            "description_untrusted": definition.description, "annotations": definition.annotations}


def validate_edited_args(action: str, args: dict[str, Any], *,
                         requested: dict[str, Any] | None = None) -> dict[str, Any]:
    """An approver's edit must still pass the tool's schema and must not be denied by the policy.

    The policy applies whether or not the action is a tool, so an action the policy does not name
    cannot be edited (default deny): approve or reject it instead. An edited MCP call stays bound to the
    definition the `requested` call was screened on, whatever the edit says.
    """
    root = project_root()
    tool = find_tool(root, action)
    clean = args
    if tool is not None:
        try:
            clean = validate_args(tool, args)
            if mcp.definition_of(tool) is not None and requested is not None and mcp.DEFINITION_KEY in requested:
                clean[mcp.DEFINITION_KEY] = requested[mcp.DEFINITION_KEY]
        except ValueError as exc:
            raise PolicyViolation(f"edited arguments rejected: {exc}") from None
    verdict = project_policy(root).evaluate(action, clean, rate=None, now=time.time())
    if verdict.verdict == "deny" and verdict.enforced:
        raise PolicyViolation(f"edited arguments rejected by policy: {verdict.reason} (rule {verdict.rule})")
    return clean
