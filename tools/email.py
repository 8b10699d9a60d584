"""send_email: the embedded outbox, or real SMTP. Exactly once per tool step via the idempotency key."""

from __future__ import annotations

import base64
import smtplib
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agentops.core import serialization
from agentops.db import open_store
from agentops.engine.toolkit import current_run_id, idempotency_key
from agentops.governance.addresses import parse_addresses
from agentops.settings import get_settings

SENDER = "agentops@example.com"


class SendEmailArgs(BaseModel):
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(description="Plain-text body.")
    cc: list[str] = Field(default_factory=list)
    attachments: list[dict[str, str]] = Field(
        default_factory=list,
        description="Optional: [{name, content_base64, mime}], or [{name, chart}] naming a chart by its sha256.")


def _smtp_send(url: str, message: EmailMessage, recipients: list[str]) -> None:
    parsed = urlparse(url)
    starttls = parse_qs(parsed.query).get("starttls", ["0"])[0] in ("1", "true")
    with smtplib.SMTP(parsed.hostname or "127.0.0.1", parsed.port or 25, timeout=30) as smtp:
        if starttls:
            smtp.starttls()
        if parsed.username:
            smtp.login(unquote(parsed.username), unquote(parsed.password or ""))
        smtp.send_message(message, from_addr=SENDER, to_addrs=recipients)


def _attachment(item: dict[str, str]) -> tuple[bytes, str]:
    """An attachment's bytes: inline base64, or a chart stored by content under .agentops/charts/."""
    if "chart" in item:
        from agentops.data.query import load_chart
        from agentops.engine.project import project_root

        png = load_chart(item["chart"], project_root())
        if png is None:
            raise ValueError(f"no stored chart with sha256 {item['chart'][:64]!r} (query_data returns the digest)")
        return png, "image/png"
    return base64.b64decode(item["content_base64"]), item.get("mime", "application/octet-stream")


def send_email(to: list[str], subject: str, body: str, cc: list[str] | None = None,
               attachments: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Record the mail in the outbox first (the sent-log), then deliver it over SMTP when configured.

    A repeated idempotency key finds the outbox row and sends nothing. Each recipient must be exactly one plain
    address (agentops.governance.addresses); the envelope and the To/Cc headers are built from the parsed
    addresses, never from the strings given.
    """
    to, cc = [str(a) for a in parse_addresses(to)], [str(a) for a in parse_addresses(cc or [])]
    key = idempotency_key()
    files = [(item.get("name", "attachment"), *_attachment(item)) for item in attachments or []]
    row, created = open_store().outbox_add({
        "idempotency_key": key, "sender": SENDER, "to": ", ".join([*to, *cc]), "subject": subject,
        "body": body, "attachments": serialization.dumps(attachments) if attachments else None,
        "run_id": current_run_id(), "created_at": time.time()})
    smtp_url = get_settings().smtp_url
    delivered = "outbox"
    if smtp_url and created:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, ", ".join(to), subject
        if cc:
            message["Cc"] = ", ".join(cc)
        message["Message-ID"] = f"<{key.replace(':', '.')}@agentops>"
        message.set_content(body)
        for name, content, mime in files:
            maintype, _, subtype = mime.partition("/")
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
        _smtp_send(smtp_url, message, [*to, *cc])
        delivered = "smtp"
    return {"status": "sent" if created else "already sent", "outbox_id": row["id"], "delivered_via": delivered,
            "to": to, "subject": subject}


TOOLS = [StructuredTool.from_function(
    func=send_email, name="send_email", args_schema=SendEmailArgs, metadata={"side_effect": True},
    description="Send a plain-text email to people in the organisation (alerts, reports). "
                "Recipients outside allowed domains are refused by policy.")]
