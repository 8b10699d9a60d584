"""Alertmanager notifications start governed runs: one per firing alert group, its repeats and resolution recorded.

A group maps to a flow by the project's `alerts.yaml` (default: `incident_response` with the alert's
`deployment` label and its annotations as the note). The start is the `start_flow` call of the policy, with its
rate limits, by the token's account (which needs a role that may start runs).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from agentops.core.ledger import Event
from agentops.db import open_store
from agentops.engine.project import project_root
from agentops.errors import ConfigError
from agentops.governance.users import CAN_OPERATE, require_user
from agentops.service.runs import actor_of
from agentops.service.setup import check_settings
from agentops.service.starts import governed_start
from agentops.settings import get_settings

RULES_FILE = "alerts.yaml"
DEFAULT_FLOW = "incident_response"
STARTING_SECONDS = 60.0
"""A claim whose run is not written yet blocks repeats this long (a receiver that crashed mid-start frees it)."""
NOTE_LIMIT = 2000


class Alert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""  # Alertmanager's field names
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = Field(default="", max_length=64)


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body, version 4."""

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=10_000)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[Alert] = Field(default_factory=list, max_length=1000)


class Rule(BaseModel):
    match: dict[str, str] = Field(default_factory=dict)
    flow: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class RulesFile(BaseModel):
    alertmanager: list[Rule] = Field(default_factory=list)


@dataclass(frozen=True)
class AlertOutcome:
    outcome: Literal["started", "active", "recent", "resolved", "unknown_group"]
    run_id: str | None = None
    reason: str = ""


def receive_alertmanager(payload: AlertmanagerPayload, *, user: str) -> AlertOutcome:
    """Start the group's flow, or note a repeat on its running run, or record its resolution on the run."""
    check_settings()
    st = open_store()
    key_hash = hashlib.sha256(payload.groupKey.encode()).hexdigest()
    firing = [a for a in payload.alerts if a.status == "firing"]
    facts = _facts(payload)
    if payload.status == "resolved" or not firing:
        return _resolved(key_hash, facts, user)
    require_user(st, user, CAN_OPERATE, "starting runs from alerts")
    flow_name, parameters = flow_for(payload)
    run_id = uuid.uuid4().hex
    claim, active = st.claim_alert_group(key_hash, payload.groupKey, run_id, now=time.time(),
                                         starting_for=STARTING_SECONDS,
                                         cooldown=get_settings().alert_cooldown_seconds)
    if claim != "claimed":
        st.append_events([Event(actor=actor_of(user), action="alert.repeated", run_id=active, payload=facts)])
        reason = ("a run for this alert group has not ended yet" if claim == "active" else
                  "a run for this alert group ended less than AGENTOPS_ALERT_COOLDOWN_SECONDS ago")
        return AlertOutcome(claim, active, reason)
    try:
        governed_start(st, flow_name, parameters, user=user, trigger="alert", run_id=run_id, source="an alert")
    except Exception as exc:
        st.release_alert_claim(key_hash, run_id)
        st.append_events([Event(actor=actor_of(user), action="alert.refused",
                                payload=facts | {"flow": flow_name, "reason": str(exc)[:500]})])
        raise
    st.append_events([Event(actor=actor_of(user), action="alert.received", run_id=run_id,
                            payload=facts | {"flow": flow_name})])
    return AlertOutcome("started", run_id)


def _resolved(key_hash: str, facts: dict[str, Any], user: str) -> AlertOutcome:
    st = open_store()
    group = st.alert_group(key_hash)
    event = Event(actor=actor_of(user), action="alert.resolved", run_id=group.run_id if group else None,
                  payload=facts)
    if group is None:
        st.append_events([event])
        return AlertOutcome("unknown_group", None, "no run was started for this alert group")
    now = time.time()
    waiting = st.list_approvals(status="pending", run_id=group.run_id) if group.run_id else []
    notes = [Event(actor=actor_of(user), action="approval.alert_resolved", run_id=group.run_id,
                   step_no=a.step_no, approval_id=a.id, ts=now,
                   payload={"group_key": facts["group_key"], "labels": facts["labels"]}) for a in waiting]
    st.set_alert_status(key_hash, "resolved", [event, *notes], now=now)
    if waiting:
        return AlertOutcome("resolved", group.run_id, f"the run still waits for approval {waiting[0].id}; the "
                                                      "request shows the alert as resolved")
    return AlertOutcome("resolved", group.run_id)


def _facts(payload: AlertmanagerPayload) -> dict[str, Any]:
    """What the ledger keeps of a notification: the group, its labels, each alert's fingerprint and labels."""
    return {"group_key": payload.groupKey, "status": payload.status, "receiver": payload.receiver,
            "labels": payload.commonLabels,
            "alerts": [{"fingerprint": a.fingerprint, "status": a.status, "labels": a.labels}
                       for a in payload.alerts[:50]]}


def flow_for(payload: AlertmanagerPayload) -> tuple[str, dict[str, Any]]:
    """The flow and parameters the project's first matching rule names, or the incident runbook."""
    first = next(a for a in payload.alerts if a.status == "firing")
    labels = {**first.labels, **payload.commonLabels}
    annotations = {**first.annotations, **payload.commonAnnotations}
    note = " ".join(annotations[k] for k in ("summary", "description") if annotations.get(k)) or \
        " ".join(f"{k}: {v}" for k, v in sorted(annotations.items()))
    values = {**labels, "note": note[:NOTE_LIMIT]}
    for rule in load_rules(project_root()):
        if all(labels.get(k) == v for k, v in rule.match.items()):
            try:
                return rule.flow, {k: Template(v).substitute(values) if isinstance(v, str) else v
                                   for k, v in rule.parameters.items()}
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"{RULES_FILE}: the rule for flow '{rule.flow}' names label {exc}, which the "
                                  "alert does not carry") from None
    parameters: dict[str, Any] = {"note": values["note"]}
    if labels.get("deployment"):
        parameters["deployment"] = labels["deployment"]
    return DEFAULT_FLOW, parameters


def load_rules(root: Path) -> list[Rule]:
    path = root / RULES_FILE
    if not path.is_file():
        return []
    try:
        return RulesFile.model_validate(yaml.safe_load(path.read_text()) or {}).alertmanager
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{RULES_FILE} is not valid: {str(exc).splitlines()[0]}") from None
