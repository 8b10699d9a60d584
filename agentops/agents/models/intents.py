"""What a chat message asks for: the facts it names, and the dispatcher route those facts pick.

The playbook model's dispatcher reads an operator's message with these rules (no language model). A route
from prompts/playbooks/dispatcher.yaml picks a flow or a tool by a `pattern` (a regular expression) or by
`keywords`; its `args` are templates over the facts below. A route's facts come from the message only, and
deployments and datasets only from the names the dispatcher was told exist. A fact a route `needs` that the
message does not name is asked for, never filled with a default. The call that results is still screened by
the policy like any other: extraction picks arguments, it grants nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentops.core.expressions import evaluate

DEPLOYMENTS_LABEL = "Deployments in the cluster:"
DATASETS_LABEL = "Datasets:"
"""The lines of the dispatcher's system prompt that list what exists (see prompts/dispatcher.md)."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_REPLICAS = re.compile(r"\bto\s+(\d+)\b(?![.,]\d|\s*%)|(?<![.,])\b(\d+)\s+replicas?\b", re.IGNORECASE)
_PRIORITY = re.compile(r"\b(P[1-4])\b", re.IGNORECASE)
_NAME = re.compile(r"\b(?:hello|hi|greet)\s+(?:to\s+)?([^\W\d_][\w'-]*)", re.IGNORECASE)
_NOT_NAMES = {"there", "please", "again", "everyone", "all"}
_SUBJECT = re.compile(r"\bticket\b(?:\s+(?:for|about|on|saying|that))?\s*[:,-]?\s*(.*)", re.IGNORECASE | re.DOTALL)
_QUESTION = re.compile(r"^\s*(?:what|which|who|how|when|where|show|list|give|top|compare|tell)\b|\?\s*$",
                       re.IGNORECASE)
_CANDIDATE = re.compile(
    r"\bdeployments?\s+([a-z0-9][\w.-]*)"
    r"|\bscale\s+(?:up\s+|down\s+)?(?:the\s+)?([a-z0-9][\w.-]*)"
    r"|\b(?:load|capacity|traffic)\s+(?:for|on|of)\s+(?:the\s+)?([a-z0-9][\w.-]*)"
    r"|\b([a-z0-9][\w.]*-[\w.-]+)\b"
    r"|^\s*([a-z0-9][\w.-]*)\s+(?:is|has|shows|reports)\b",
    re.IGNORECASE)
FACTS = {"text", "deployment", "emails", "replicas", "priority", "name", "subject", "question", "dataset"}
"""The facts a route's templates may read."""
_NOT_DEPLOYMENTS = {"the", "a", "an", "it", "up", "down", "to", "this", "that", "all", "out", "in", "cpu", "load",
                    "e-mail", "next", "me", "us", "today", "tomorrow", "everything", "each", "every"}


@dataclass(frozen=True)
class Known:
    """What the dispatcher was told exists: deployments (from the cluster backend) and datasets."""

    deployments: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    @classmethod
    def from_prompt(cls, text: str) -> Known:
        return cls(_listed(text, DEPLOYMENTS_LABEL), _listed(text, DATASETS_LABEL))


@dataclass(frozen=True)
class Call:
    """Call `tool` with `args`: a flow is started through `start_flow`."""

    tool: str
    args: dict[str, Any]
    flow: str | None = None


@dataclass(frozen=True)
class Answer:
    """No call: say this instead."""

    text: str


def _listed(text: str, label: str) -> tuple[str, ...]:
    for line in text.splitlines():
        if line.strip().startswith(label):
            return tuple(n.strip() for n in line.split(label, 1)[1].split(",") if n.strip() and n.strip() != "(none)")
    return ()


def _mentioned(text: str, names: Iterable[str]) -> list[str]:
    """The names that appear in the text as whole words (a hyphen or a dot joins a word)."""
    return [n for n in names if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w-]|\.\w)", text, re.IGNORECASE)]


def _deployment(text: str, known: Known) -> str | Answer | None:
    """The one deployment the message names; an Answer when it names several or one that does not exist."""
    named = _mentioned(text, known.deployments)
    if len(named) > 1:
        return Answer(f"That names {len(named)} deployments ({', '.join(named)}); ask for one at a time.")
    if named:
        return named[0]
    for match in _CANDIDATE.finditer(text):
        candidate = next(g for g in match.groups() if g).lower()
        if candidate not in _NOT_DEPLOYMENTS and not _EMAIL.fullmatch(candidate):
            return Answer(f"There is no deployment '{candidate}' in the cluster "
                          f"(known: {', '.join(known.deployments) or 'none'}).")
    return None


def facts(text: str, known: Known) -> dict[str, Any]:
    """Every fact the message names. `deployment` may be an Answer (ambiguous or unknown), used only by routes
    that ask for it."""
    found: dict[str, Any] = {"text": text.strip(), "deployment": _deployment(text, known),
                             "emails": _EMAIL.findall(text)}
    if replicas := _REPLICAS.search(text):
        found["replicas"] = int(replicas.group(1) or replicas.group(2))
    if priority := _PRIORITY.search(text):
        found["priority"] = priority.group(1).upper()
    if (name := _NAME.search(text)) and name.group(1).lower() not in _NOT_NAMES:
        found["name"] = name.group(1)
    if (subject := _SUBJECT.search(text)) and subject.group(1).strip():
        found["subject"] = subject.group(1).strip()[:200]
    if _QUESTION.search(text) and not found["emails"]:
        found["question"] = text.strip()[:500]
    datasets = _mentioned(text, known.datasets)
    if len(datasets) == 1 or (not datasets and len(known.datasets) == 1):
        found["dataset"] = (datasets or list(known.datasets))[0]
    return found


def _matches(route: dict[str, Any], text: str) -> bool:
    if "pattern" in route:
        return re.search(route["pattern"], text, re.IGNORECASE) is not None
    return any(re.search(rf"\b{re.escape(k)}\b", text, re.IGNORECASE) for k in route.get("keywords", []))


def _uses(template: Any) -> set[str]:
    """The facts a template reads: `{name}` fields, and the names in an `=expression`."""
    if isinstance(template, dict):
        return set().union(*(_uses(v) for v in template.values()))
    if isinstance(template, list):
        return set().union(*(_uses(v) for v in template))
    if not isinstance(template, str):
        return set()
    words = re.findall(r"[A-Za-z_]\w*", template[1:]) if template.startswith("=") else re.findall(r"\{(\w+)", template)
    return set(words) & FACTS


def _present(found: dict[str, Any], name: str) -> bool:
    return found.get(name) not in (None, "", [])


def _fill(template: Any, found: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, found) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, found) for v in template]
    if isinstance(template, str) and template.startswith("="):
        return evaluate(template[1:], found)
    if isinstance(template, str):
        return template.format(**found)
    return template


def route(text: str, routes: list[dict[str, Any]], known: Known) -> Call | Answer:
    """The first route the message matches, filled from its facts; or an Answer saying what is missing."""
    found = facts(text, known)
    for rule in routes:
        if not _matches(rule, text) or not all(_present(found, f) for f in rule.get("with", [])):
            continue
        template = rule.get("args") or rule.get("parameters") or {}
        wanted = set(rule.get("needs", [])) | _uses(template)
        if isinstance(found["deployment"], Answer) and "deployment" in wanted:
            return found["deployment"]
        missing = [f for f in rule.get("needs", []) if not _present(found, f)]
        if missing:
            return Answer(rule.get("ask") or f"That needs {', '.join(missing)}; say which.")
        args = {k: v for k, v in template.items() if all(_present(found, f) for f in _uses(v))}
        filled = _fill(args, found)
        if "flow" in rule:
            return Call("start_flow", {"flow": rule["flow"], "parameters": filled}, flow=rule["flow"])
        return Call(rule["call"], filled)
    offered = sorted({r.get("flow") or r.get("call", "") for r in routes} - {""})
    return Answer("No route matches that request, so I did nothing. I can: " + ", ".join(offered)
                  + (". Deployments: " + ", ".join(known.deployments) if known.deployments else "") + ".")
