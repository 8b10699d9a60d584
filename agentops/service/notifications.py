"""Delivering the notifications that tell approvers of a request: Slack-compatible webhook and email.

The rows are written with the request (agentops.governance.notifications); this is the periodic job that sends
them once they are due by the database's clock: whoever runs housekeeping (a worker, `serve`, the scheduler
holding the lease with dispatch on) runs it. Each attempt is taken with a compare-and-set on the row and a lease;
a process killed mid-send leaves the row `sending` until its lease runs out, and the next attempt records the
lost one as uncertain and sends again with the same id (at least once: a receiver counts repeats by the id in the
payload and the `Idempotency-Key` header, or by the mail's Message-ID). A failed attempt is tried again after a
wait that doubles (AGENTOPS_NOTIFY_RETRY_SECONDS, up to 15 min) until AGENTOPS_NOTIFY_ATTEMPTS; a request decided
or closed before its notification is due skips it. Every attempt and outcome is a ledger event.

The webhook URL is a secret (AGENTOPS_SLACK_WEBHOOK_URL): it is read from the settings at each attempt, screened
against the policy's `notifications.webhook_hosts` (empty refuses it), and never stored, logged or shown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from agentops.backends import mail, slack
from agentops.backends.slack import SendOutcome
from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.core.redaction import default_redactor
from agentops.core.times import format_time
from agentops.db import Store, open_store
from agentops.db.notifications import DELIVERED, FAILED, RETRYING, SENDING
from agentops.engine.project import project_root
from agentops.governance import binding
from agentops.governance.notifications import ESCALATION, REMINDER, members
from agentops.governance.policy import Policy, is_address
from agentops.governance.screening import project_policy
from agentops.governance.users import CAN_DECIDE
from agentops.service.links import approval_url
from agentops.settings import get_settings

if TYPE_CHECKING:
    from agentops.db.schema import Approval, Notification

log = logging.getLogger("agentops.service.notifications")

ACTOR = "system:notify"
MAX_BACKOFF = 900.0
TEXT_LIMIT = 2900
"""Slack refuses a section text over 3000 characters."""


def deliver_due(store: Store, now: float | None = None, limit: int = 100) -> list[str]:
    """Attempt every notification due at `now` (default: the database's clock); the ids delivered now."""
    now = store.clock() if now is None else now
    due = store.due_notifications(now, limit)
    if not due:
        return []
    policy = project_policy(project_root())
    return [n.id for n in due if _deliver(store, n, now, policy)]


def _deliver(store: Store, n: Notification, now: float, policy: Policy) -> bool:
    appr = store.get_approval(n.approval_id)
    if appr is None or appr.status != "pending" or (appr.expires_at is not None and appr.expires_at <= now):
        why = "the request does not exist" if appr is None else (
            f"the request is {appr.status}" if appr.status != "pending" else "the request expired")
        store.skip_notification(n.id, n.attempts, now=now, reason=why,
                                events=[_event(n, "notification.skipped", n.attempts, reason=why)])
        return False
    settings = get_settings()
    attempt = n.attempts + 1
    events = [_event(n, "notification.attempt", attempt)]
    if n.status == SENDING:
        events.insert(0, _event(n, "notification.delivery_uncertain", n.attempts, reason=(
            "the process making this attempt stopped before it recorded the outcome; the notification may have "
            "arrived, and is sent again with the same id")))
    recipients: list[str] = serialization.loads(n.recipients, f"notification {n.id} recipients") or []
    if n.kind == ESCALATION and n.attempts == 0:
        events.append(_escalated(store, n, appr, recipients))
    if not store.start_notification_attempt(n.id, n.attempts, now=now, lease_until=now + settings.notify_lease_seconds,
                                            events=events):
        return False  # another process took this attempt
    started = time.monotonic()
    try:
        sent = _send(store, n, appr, recipients, policy)
    except Exception as exc:  # a message that cannot be built or sent: recorded, tried again
        sent = SendOutcome(False, default_redactor().text(f"{type(exc).__name__}: {exc}")[:500], retryable=True)
    finished = now + (time.monotonic() - started)
    values: dict[str, Any] = {"updated_at": finished, "lease_until": None}
    if sent.delivered:
        values |= {"status": DELIVERED, "delivered_at": finished, "last_error": None}
        outcome = _event(n, "notification.delivered", attempt, reply=sent.detail[:300])
    elif sent.retryable and attempt < settings.notify_attempts:
        wait = min(MAX_BACKOFF, settings.notify_retry_seconds * 2 ** (attempt - 1))
        values |= {"status": RETRYING, "next_at": finished + wait, "last_error": sent.detail}
        action = "notification.delivery_uncertain" if sent.uncertain else "notification.delivery_failed"
        outcome = _event(n, action, attempt, reason=sent.detail, retry_in_seconds=wait)
    else:
        values |= {"status": FAILED, "last_error": sent.detail}
        action = "notification.refused" if sent.refused else "notification.failed"
        outcome = _event(n, action, attempt, reason=sent.detail,
                         gave_up=None if sent.refused or not sent.retryable else f"after {attempt} attempts")
    store.finish_notification_attempt(n.id, attempt, values, [outcome])
    return sent.delivered


def _event(n: Notification, action: str, attempt: int, **payload: Any) -> Event:
    return Event(ACTOR, action, run_id=n.run_id, approval_id=n.approval_id, payload={
        "notification_id": n.id, "kind": n.kind, "channel": n.channel, "attempt": attempt, **payload})


def _escalated(store: Store, n: Notification, appr: Approval, recipients: list[str]) -> Event:
    """The escalation, with who of the second group can decide (an active approver or admin account) and who
    cannot: being told gives no right to decide."""
    can, cannot = [], {}
    for member in recipients:
        user = store.get_user(member)
        if user is not None and not user.disabled and user.role in CAN_DECIDE:
            can.append(member)
        else:
            cannot[member] = ("no account of that name" if user is None else "disabled" if user.disabled
                              else f"role '{user.role}'")
    return Event(ACTOR, "approval.escalated", run_id=n.run_id, approval_id=n.approval_id, payload={
        "notification_id": n.id, "channel": n.channel, "to": recipients, "can_decide": can,
        "cannot_decide": cannot, "waiting_since": appr.created_at})


def _refusal(store: Store, n: Notification, appr: Approval, recipients: list[str], policy: Policy) -> str | None:
    """Why this notification may not go out as stored (fail closed against someone who can write the database):
    the request differs from the one the ledger recorded, or a recipient is not one the policy names for it."""
    changed = binding.request_mismatch(store, appr) if appr.run_id else None
    if changed is not None:
        return changed.line(appr.id, "no notification of it is sent")
    rule = policy.rules.get(appr.action)
    named = members(policy, [*rule.notify_to, *rule.escalate_to]) if rule is not None else []
    strangers = [m for m in recipients if m not in named]
    if strangers:
        return (f"recipient {strangers[0]!r} is not named by the policy rule for {appr.action} (notify_to, "
                "escalate_to and their groups)")
    if rule is None or n.channel not in rule.notify:
        return f"the policy rule for {appr.action} no longer names the {n.channel} channel"
    return None


def _send(store: Store, n: Notification, appr: Approval, recipients: list[str], policy: Policy) -> SendOutcome:
    refused = _refusal(store, n, appr, recipients, policy)
    if refused is not None:
        return SendOutcome(False, refused, refused=True)
    settings = get_settings()
    if n.channel == "slack":
        secret = settings.slack_webhook_url
        outcome = slack.post(secret.get_secret_value() if secret else None, policy.data.notifications.webhook_hosts,
                             slack_message(n, appr, recipients), idempotency_id=n.id,
                             timeout=settings.notify_timeout_seconds)
        return outcome
    if n.channel == "email":
        return _send_email(store, n, appr, recipients)
    return SendOutcome(False, f"unknown channel '{n.channel}'", refused=True)


def _send_email(store: Store, n: Notification, appr: Approval, recipients: list[str]) -> SendOutcome:
    addresses = [m for m in recipients if is_address(m)]
    if not addresses:
        return SendOutcome(False, f"no email address among {recipients}", refused=True)
    message = email_message(n, appr, addresses)
    settings = get_settings()
    key = f"notification:{n.id}"
    if not settings.smtp_url:  # the embedded outbox is the delivery
        now = time.time()
        store.outbox_add({"idempotency_key": key, "sender": mail.SENDER, "to": ", ".join(addresses),
                          "subject": str(message["Subject"]), "body": message.get_content(), "attachments": None,
                          "run_id": n.run_id, "created_at": now, "message_id": message["Message-ID"],
                          "status": DELIVERED, "attempts": 1, "retryable": False, "server_reply": "embedded outbox",
                          "failure": None, "updated_at": now, "delivered_at": now})
        return SendOutcome(True, "embedded outbox")
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    outcome = mail.deliver_once(settings.smtp_url, mail.SENDER, addresses, data, settings.notify_timeout_seconds)
    return SendOutcome(outcome.status == DELIVERED, outcome.detail, outcome.retryable,
                       uncertain=outcome.status == "uncertain")


# -- the messages --------------------------------------------------------------------------------------------------


def _headline(n: Notification, appr: Approval) -> str:
    if n.kind == REMINDER:
        return f"Reminder: approval still needed for {appr.action}"
    if n.kind == ESCALATION:
        return f"Escalated: nobody has decided {appr.action} yet"
    return f"Approval needed: {appr.action}"


def _facts(appr: Approval) -> dict[str, str]:
    redactor = default_redactor()
    args = serialization.loads(appr.args, f"approval {appr.id} arguments") or {}
    return {"action": appr.action, "arguments": redactor.text(json.dumps(redactor(args), indent=2, sort_keys=True)),
            "reason": redactor.text(appr.reason or "-"), "requester": appr.requester,
            "expires": format_time(appr.expires_at) if appr.expires_at is not None else "never",
            "link": approval_url(appr.id)}


def _mrkdwn(text: str) -> str:
    """Text as Slack shows it literally: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def slack_message(n: Notification, appr: Approval, recipients: list[str]) -> dict[str, Any]:
    """The Block Kit message: the action, its (redacted) arguments, the reason, the expiry and a button linking
    to the request in the app. The link opens the request; it decides nothing."""
    f = _facts(appr)
    headline = _headline(n, appr)
    people = ", ".join(recipients) or "the approvers"
    arguments = _clip(_mrkdwn(f["arguments"]), TEXT_LIMIT - 20)
    return {
        "text": f"{headline} (expires {f['expires']}): {f['link']}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(headline, 150)}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*Action*\n`{_mrkdwn(f['action'])}`"},
                {"type": "mrkdwn", "text": f"*Expires*\n{_mrkdwn(f['expires'])}"},
                {"type": "mrkdwn", "text": f"*Requested by*\n{_mrkdwn(f['requester'])}"},
                {"type": "mrkdwn", "text": f"*For*\n{_mrkdwn(_clip(people, 1900))}"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Reason*\n{_mrkdwn(f['reason'])}")}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Arguments*\n```{arguments}```"}},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open the request"}, "url": f["link"],
                 "action_id": "open_request"}]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"request `{appr.id}` · notification `{n.id}` · deciding needs a "
                                           "logged-in approver"}]},
        ],
        "metadata": {"event_type": "agentops_approval",
                     "event_payload": {"notification_id": n.id, "approval_id": appr.id, "kind": n.kind}},
    }


def email_message(n: Notification, appr: Approval, addresses: list[str]) -> EmailMessage:
    f = _facts(appr)
    message = EmailMessage()
    message["From"] = mail.SENDER
    message["To"] = ", ".join(addresses)
    message["Subject"] = f"[agentops] {_headline(n, appr)}"
    message["Message-ID"] = mail.message_id(f"notification:{n.id}")
    message["X-Agentops-Notification"] = n.id
    message.set_content(
        f"{_headline(n, appr)}\n\nAction: {f['action']}\nArguments:\n{f['arguments']}\n\nReason: {f['reason']}\n"
        f"Requested by: {f['requester']}\nExpires: {f['expires']}\n\nOpen the request: {f['link']}\n"
        "(the link opens the request; deciding needs a logged-in approver)\n\n"
        f"request {appr.id} · notification {n.id}\n")
    return message


# -- for the faces --------------------------------------------------------------------------------------------------


def notifications_of(approval_id: str) -> list[Notification]:
    """The notifications of one request (its id or a unique prefix), in the order they are due."""
    from agentops.service.approvals import get_approval

    return open_store().notifications_for(get_approval(approval_id).id)


def notification_document(n: Notification) -> dict[str, Any]:
    return {**n.model_dump(), "recipients": serialization.loads(n.recipients, f"notification {n.id} recipients")}


class Notifier:
    """The housekeeping job: each call starts one delivery pass in a thread of its own, unless one is running, so
    a slow webhook or mail server never holds up a worker's claims."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def __call__(self, store: Store) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._pass, args=(store,), name="agentops-notify", daemon=True)
        self._thread.start()

    @staticmethod
    def _pass(store: Store) -> None:
        try:
            deliver_due(store)
        except Exception:
            log.exception("delivering notifications failed; trying again at the next pass")
