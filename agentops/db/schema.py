"""The database schema as SQLModel tables. Queries live in `agentops.db.store`, nowhere else.

Times are UTC epoch seconds (float): portable between SQLite and PostgreSQL and cheap to compare.
JSON columns hold text produced by `agentops.core.serialization.dumps`.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, Text, UniqueConstraint, false, text
from sqlalchemy.orm import class_mapper
from sqlmodel import Field, SQLModel


class FlowRun(SQLModel, table=True):
    __tablename__ = "flow_runs"
    __table_args__ = (
        Index("ix_flow_runs_claimable", "created_at", sqlite_where=text("state IN ('CRASHED', 'PENDING')"),
              postgresql_where=text("state IN ('CRASHED', 'PENDING')")),
        Index("ix_flow_runs_state_created", "state", "created_at"),
        Index("ix_flow_runs_flow_created", "flow_name", "created_at"),
        Index("ix_flow_runs_created", "created_at"),
        UniqueConstraint("schedule_id", "scheduled_for", name="uq_flow_runs_schedule_fire"),
    )

    id: str = Field(primary_key=True, max_length=32)
    flow_name: str = Field(max_length=200)
    parameters: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    state: str = Field(default="PENDING", max_length=32)
    state_message: str | None = Field(default=None, sa_column=Column(Text))
    trigger: str = Field(default="manual", max_length=32)
    created_by: str | None = Field(default=None, max_length=200)
    parent_run_id: str | None = Field(default=None, max_length=32)
    schedule_id: int | None = Field(default=None)
    scheduled_for: float | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    ended_at: float | None = None
    worker_id: str | None = Field(default=None, max_length=100)
    heartbeat_at: float | None = None
    """The database's clock (epoch seconds) at the executing worker's last heartbeat."""
    epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """How many times the run was claimed (or taken away); every write of an execution checks it (fencing)."""
    wake_at: float | None = None
    result: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    queue: str | None = Field(default=None, max_length=200)
    """The broker queue the run is sent to, chosen from its flow when it was created; None: AGENTOPS_BROKER_QUEUE."""


class StepRun(SQLModel, table=True):
    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("run_id", "step_no", name="uq_step_runs_run_step"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32, index=True)
    step_no: int
    name: str = Field(max_length=200)
    kind: str = Field(default="task", max_length=32)
    state: str = Field(max_length=32)
    inputs_digest: str | None = Field(default=None, max_length=64)
    inputs: str | None = Field(default=None, sa_column=Column(Text))
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: float | None = None
    tags: str | None = Field(default=None, max_length=500)
    cache_key: str | None = Field(default=None, max_length=200)
    meta: str | None = Field(default=None, sa_column=Column(Text))
    """Kind-specific facts: model name, token usage, latency, verdict, approval id."""
    tokens: int = 0
    cost: float = 0.0


class LogLine(SQLModel, table=True):
    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_run", "run_id", "id"),
                      Index("uq_log_lines_key", "run_id", "line_key", unique=True))

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32)
    step_no: int | None = None
    ts: float
    level: str = Field(max_length=16)
    message: str = Field(sa_column=Column(Text, nullable=False))
    line_key: str | None = Field(default=None, max_length=64)
    """The line's place in the flow (see agentops.engine.logs): a replay that logs it again inserts nothing."""


class CacheEntry(SQLModel, table=True):
    __tablename__ = "task_cache"

    key: str = Field(primary_key=True, max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float
    expires_at: float | None = None


class LedgerEvent(SQLModel, table=True):
    """Append-only, hash-chained audit event. `hash` = sha256(prev_hash + canonical fields)."""

    __tablename__ = "ledger"
    __table_args__ = (
        Index("ix_ledger_run", "run_id", "seq"),
        Index("ix_ledger_ts", "ts"),
        Index("ix_ledger_actor", "actor", "seq"),
        Index("ix_ledger_action", "action", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    ts: float
    actor: str = Field(max_length=200)
    action: str = Field(max_length=100)
    run_id: str | None = Field(default=None, max_length=32)
    step_no: int | None = None
    approval_id: str | None = Field(default=None, max_length=32)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    policy_hash: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class LedgerHead(SQLModel, table=True):
    """The ledger's high-water mark: one row (id 1) with the last seq handed out and its hash. Every append
    moves it in the same transaction; deleting events never lowers it, so sequence numbers are never reused."""

    __tablename__ = "ledger_head"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int
    hash: str = Field(max_length=64)


class LedgerCheckpoint(SQLModel, table=True):
    """The database's copy of a signed checkpoint (the copy that counts is in the checkpoint directory)."""

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (Index("ix_ledger_checkpoints_seq", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    seq: int
    hash: str = Field(max_length=64)
    count: int
    ts: float
    key_fingerprint: str = Field(max_length=64)
    signature: str = Field(max_length=200)


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_pending", "created_at", sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        UniqueConstraint("run_id", "step_no", name="uq_approvals_run_step"),
    )

    id: str = Field(primary_key=True, max_length=32)
    run_id: str | None = Field(default=None, max_length=32, index=True)
    step_no: int | None = None
    action: str = Field(max_length=200)
    args: str = Field(sa_column=Column(Text, nullable=False))
    args_digest: str = Field(max_length=64)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    requester: str = Field(max_length=200)
    verdict: str | None = Field(default=None, sa_column=Column(Text))
    policy_hash: str | None = Field(default=None, max_length=64)
    context: str | None = Field(default=None, sa_column=Column(Text))
    """What led to the request, e.g. the model conversation, as JSON."""
    quorum: int = 1
    kind: str = Field(default="approve", max_length=16, sa_column_kwargs={"server_default": "approve"})
    """approve: a decision on a proposed call; respond: an MCP server's request for input (its fields in `args`)."""
    status: str = Field(default="pending", max_length=16)
    created_at: float
    expires_at: float | None = None
    decided_at: float | None = None
    decided_by: str | None = Field(default=None, max_length=500)
    decision: str | None = Field(default=None, sa_column=Column(Text))
    """The final decision as JSON: kind, args (edited or original), message."""


class Notification(SQLModel, table=True):
    """One message telling approvers of a request, written in the transaction that opens it (an outbox) and
    delivered later by whoever runs the periodic work.

    `kind`: `requested` (due at once), `reminder` (before expiry) or `escalation` (to the second group).
    `status` (agentops.db.notifications): `queued`, `sending` (an attempt began; `lease_until` says when it counts
    as lost with its process), `retrying` (an attempt failed; tried again at `next_at`), `delivered`, `failed`
    (given up, `last_error` says why) or `skipped` (the request was decided or closed before it was due). `id` is
    the message's idempotency id, the same on every attempt. No webhook URL is kept here: it is a secret.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_next", "status", "next_at"),)

    id: str = Field(primary_key=True, max_length=32)
    approval_id: str = Field(max_length=32, index=True)
    run_id: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=16)
    channel: str = Field(max_length=16)
    recipients: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    """JSON list: account names and email addresses, groups expanded."""
    due_at: float
    next_at: float
    status: str = Field(default="queued", max_length=16)
    attempts: int = 0
    lease_until: float | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float
    updated_at: float
    delivered_at: float | None = None


class ApprovalVote(SQLModel, table=True):
    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "user", name="uq_approval_votes_user"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: str = Field(max_length=32, index=True)
    user: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    args_digest: str = Field(max_length=64)
    args: str | None = Field(default=None, sa_column=Column(Text))
    message: str | None = Field(default=None, sa_column=Column(Text))
    ts: float


class User(SQLModel, table=True):
    __tablename__ = "users"

    name: str = Field(primary_key=True, max_length=200)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=500)
    created_at: float
    disabled: bool = False


class ApiToken(SQLModel, table=True):
    """A bearer token of the HTTP API: only its SHA-256 is kept. It acts as the local account of its name."""

    __tablename__ = "api_tokens"

    name: str = Field(primary_key=True, max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    created_by: str = Field(max_length=200)
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    """After this (epoch seconds) the token is refused; None: it lives until revoked."""


class HookDelivery(SQLModel, table=True):
    """A signed webhook request seen: the same signature again within the window is a replay."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (Index("ix_hook_deliveries_signed", "signed_at"),)

    key: str = Field(primary_key=True, max_length=64)
    """SHA-256 of the hook's name and the signature it carried."""
    hook: str = Field(max_length=200)
    signed_at: float
    """The signed timestamp: once it is outside the window the request is stale anyway, and the row can go."""
    seen_at: float
    run_id: str | None = Field(default=None, max_length=32)


class AuthFailure(SQLModel, table=True):
    """Refused API authentications counted per kind, subject and reason and per minute: the first of each minute is
    a ledger event, the rest of that minute one summary event (a flood cannot fill the ledger)."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_pending", "minute"),)

    key: str = Field(primary_key=True, max_length=64)
    minute: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=200)
    reason: str = Field(max_length=200)
    count: int = 0
    recorded: int = 0
    """How many of `count` the ledger has been told of."""
    first_at: float
    last_at: float


class WebSession(SQLModel, table=True):
    """A login to the app: only the SHA-256 of the random session id is kept, so the table cannot log anyone in."""

    __tablename__ = "web_sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(max_length=200)
    via: str = Field(max_length=16)
    created_at: float
    expires_at: float
    ended_at: float | None = None
    end_reason: str | None = Field(default=None, max_length=16)
    """logout or expired."""


class AlertGroup(SQLModel, table=True):
    """An Alertmanager alert group and the run its firing started: a repeat does not start another while it runs."""

    __tablename__ = "alert_groups"

    key_hash: str = Field(primary_key=True, max_length=64)
    """SHA-256 of the group key (Alertmanager's groupKey is as long as the group's labels)."""
    group_key: str = Field(sa_column=Column(Text, nullable=False))
    generation: int = 0
    """Moved on by each claim: two receivers that read the same generation cannot both claim it."""
    run_id: str | None = Field(default=None, max_length=32)
    claimed_at: float
    status: str = Field(default="firing", max_length=16)
    updated_at: float


class Schedule(SQLModel, table=True):
    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_due", "next_fire_at"),)

    id: int | None = Field(default=None, primary_key=True)
    flow_name: str = Field(max_length=200)
    cron: str | None = Field(default=None, max_length=100)
    interval_seconds: float | None = None
    timezone: str = Field(default="UTC", max_length=64)
    parameters: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    catchup: str = Field(default="skip", max_length=16)
    paused: bool = False
    next_fire_at: float | None = None
    last_fire_at: float | None = None
    created_at: float
    created_by: str | None = Field(default=None, max_length=200)


class Lease(SQLModel, table=True):
    """A named lock with an expiry (the active scheduler holds one)."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    expires_at: float


class RateEvent(SQLModel, table=True):
    """One counted use of a rate-limited action, for policy windows."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_ts", "key", "ts"),
                      Index("ux_rate_events_use_id", "use_id", unique=True))

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300)
    ts: float
    use_id: str | None = Field(default=None, max_length=80)
    """The step that took this slot ("run_id:step_no"): that step run again is the same use, not a new one."""


class OutboxEmail(SQLModel, table=True):
    """Every mail a step sends: the embedded email backend and, with SMTP, the record of its delivery.

    `status` (agentops.db.backends: OUTBOX_STATES): `queued` (recorded, not tried yet), `sending` (an attempt
    began and its outcome is not recorded yet), `delivered` (the server accepted it: `server_reply`), `failed`
    (`failure` says why; `retryable` says whether the step run again tries again) or `uncertain` (the connection
    died after the message went out and before the server's reply). The embedded outbox is its own delivery:
    without SMTP a row is `delivered` when it is written.
    """

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    sender: str = Field(max_length=300)
    to: str = Field(sa_column=Column(Text, nullable=False))
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    attachments: str | None = Field(default=None, sa_column=Column(Text))
    run_id: str | None = Field(default=None, max_length=32)
    created_at: float
    message_id: str | None = Field(default=None, max_length=300)
    """The Message-ID header, derived from the idempotency key: the same on every attempt, so a receiver can drop
    a duplicate."""
    status: str = Field(default="delivered", max_length=20, sa_column_kwargs={"server_default": "delivered"})
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    server_reply: str | None = Field(default=None, sa_column=Column(Text))
    failure: str | None = Field(default=None, sa_column=Column(Text))
    retryable: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    updated_at: float | None = None
    delivered_at: float | None = None


class Ticket(SQLModel, table=True):
    """The embedded ticket backend."""

    __tablename__ = "tickets"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    priority: str = Field(default="P3", max_length=8)
    status: str = Field(default="open", max_length=32)
    assignee: str | None = Field(default=None, max_length=200)
    run_id: str | None = Field(default=None, max_length=32)
    created_at: float
    updated_at: float


class Deployment(SQLModel, table=True):
    """The simulated cluster: one row per deployment with its current replicas and metrics."""

    __tablename__ = "deployments"

    name: str = Field(primary_key=True, max_length=200)
    namespace: str = Field(default="default", max_length=100)
    replicas: int
    cpu_percent: float
    error_rate: float
    p95_latency_ms: float
    base_load: float = 1.0
    """Load in 'replica-equivalents at 100% CPU'; cpu_percent follows load / replicas."""
    updated_at: float


class ScaleEvent(SQLModel, table=True):
    __tablename__ = "scale_events"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    deployment: str = Field(max_length=200)
    from_replicas: int
    to_replicas: int
    run_id: str | None = Field(default=None, max_length=32)
    ts: float


class MetricSample(SQLModel, table=True):
    """Metric history of the simulated cluster (predictive scaling reads it)."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_metric_samples_dep_ts", "deployment", "ts"),)

    id: int | None = Field(default=None, primary_key=True)
    deployment: str = Field(max_length=200)
    ts: float
    cpu_percent: float
    requests_per_s: float


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_conv", "conversation_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(max_length=32)
    user: str | None = Field(default=None, max_length=200)
    role: str = Field(max_length=16)
    content: str = Field(sa_column=Column(Text, nullable=False))
    run_id: str | None = Field(default=None, max_length=32)
    ts: float


class McpPin(SQLModel, table=True):
    """The definition of an MCP server's tool as an admin (or its first allowed use) accepted it."""

    __tablename__ = "mcp_pins"

    server: str = Field(primary_key=True, max_length=200)
    tool: str = Field(primary_key=True, max_length=200)
    digest: str = Field(max_length=64)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    pinned_by: str = Field(max_length=200)
    pinned_at: float


def _table(model: type[SQLModel]) -> Table:
    """The Core table mapped for `model` (SQLModel does not declare `__table__` to type checkers)."""
    table = class_mapper(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


RUNS = _table(FlowRun)
STEPS = _table(StepRun)
LOGS = _table(LogLine)
CACHE = _table(CacheEntry)
LEDGER = _table(LedgerEvent)
LEDGER_HEAD = _table(LedgerHead)
CHECKPOINTS = _table(LedgerCheckpoint)
APPROVALS = _table(Approval)
VOTES = _table(ApprovalVote)
NOTIFICATIONS = _table(Notification)
USERS = _table(User)
TOKENS = _table(ApiToken)
WEB_SESSIONS = _table(WebSession)
ALERT_GROUPS = _table(AlertGroup)
HOOK_DELIVERIES = _table(HookDelivery)
AUTH_FAILURES = _table(AuthFailure)
SCHEDULES = _table(Schedule)
LEASES = _table(Lease)
RATES = _table(RateEvent)
OUTBOX = _table(OutboxEmail)
TICKETS = _table(Ticket)
DEPLOYMENTS = _table(Deployment)
SCALES = _table(ScaleEvent)
METRICS = _table(MetricSample)
CHAT = _table(ChatMessage)
MCP_PINS = _table(McpPin)
