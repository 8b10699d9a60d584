"""The service layer: the one door through which the CLI, the app, the chat and the API act.

Every action a person takes goes through here; faces never reach the store or the engine themselves.
"""

from __future__ import annotations

from agentops.core.times import format_time, iso_time
from agentops.governance.users import CAN_DECIDE, CAN_OPERATE, CAN_SCHEDULE
from agentops.service import alerts, chat, links, run_view, schedules, sessions, tokens, views
from agentops.service.accounts import add_user, authenticate, list_users, oidc_login
from agentops.service.approvals import decide, get_approval, list_approvals
from agentops.service.audit import (
    audit_checkpoint,
    audit_count,
    audit_export,
    audit_search,
    audit_verify,
    ledger_record,
)
from agentops.service.data import ask_data, list_datasets
from agentops.service.documents import approval_document, run_detail_document, run_document
from agentops.service.notifications import notification_document, notifications_of
from agentops.service.processes import (
    broker_dispatch,
    celery_worker_command,
    new_scheduler,
    new_worker,
    run_celery_worker,
)
from agentops.service.runs import (
    RunDetail,
    actor_of,
    cancel,
    chat_conversations,
    chat_history,
    chat_send,
    conversation_owner,
    count_runs,
    execute_here,
    find_flow,
    follow_run,
    get_run,
    list_flows,
    list_runs,
    pending_approvals_for,
    project_path,
    requeue,
    rerun,
    resolve_run_id,
    resume,
    run_detail,
    run_flow_names,
    run_logs,
    run_notes,
    run_now,
    run_outcome,
    run_steps,
    start_run,
)
from agentops.service.setup import init_project, open_database
from agentops.settings import get_settings

__all__ = [
    "CAN_DECIDE",
    "CAN_OPERATE",
    "CAN_SCHEDULE",
    "RunDetail",
    "actor_of",
    "add_user",
    "alerts",
    "approval_document",
    "ask_data",
    "audit_checkpoint",
    "audit_count",
    "audit_export",
    "audit_search",
    "audit_verify",
    "authenticate",
    "broker_dispatch",
    "cancel",
    "celery_worker_command",
    "chat",
    "chat_conversations",
    "chat_history",
    "chat_send",
    "conversation_owner",
    "count_runs",
    "decide",
    "execute_here",
    "find_flow",
    "follow_run",
    "format_time",
    "get_approval",
    "get_run",
    "get_settings",
    "init_project",
    "iso_time",
    "ledger_record",
    "links",
    "list_approvals",
    "list_datasets",
    "list_flows",
    "list_runs",
    "list_users",
    "new_scheduler",
    "new_worker",
    "notification_document",
    "notifications_of",
    "oidc_login",
    "open_database",
    "pending_approvals_for",
    "project_path",
    "requeue",
    "rerun",
    "resolve_run_id",
    "resume",
    "run_celery_worker",
    "run_detail",
    "run_detail_document",
    "run_document",
    "run_flow_names",
    "run_logs",
    "run_notes",
    "run_now",
    "run_outcome",
    "run_steps",
    "run_view",
    "schedules",
    "sessions",
    "start_run",
    "tokens",
    "views",
]
