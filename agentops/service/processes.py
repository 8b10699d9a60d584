"""The long-running processes a face starts: a worker (with the governance housekeeping) and a scheduler."""

from __future__ import annotations

from typing import Any

from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.governance.approvals import expire_due
from agentops.scheduling.scheduler import Scheduler
from agentops.service.audit import Checkpointer


def new_worker(**options: Any) -> Worker:
    """A worker that also closes approvals past their expiry and signs ledger checkpoints between claims."""
    options.setdefault("store", open_store())
    return Worker(housekeeping=[expire_due, Checkpointer()], **options)


def new_scheduler(**options: Any) -> Scheduler:
    return Scheduler(open_store(), **options)
