"""agentops: durable flows, governed LLM agents, approvals and a tamper-evident audit ledger.

`import agentops` stays light: it never imports streamlit, pandasai or langchain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentops.core.states import TERMINAL, State
from agentops.engine.flows import Flow, flow
from agentops.engine.logs import get_run_logger
from agentops.engine.tasks import CacheContext, StepFuture, Task, task, wait
from agentops.errors import AgentOpsError, RunFailed

if TYPE_CHECKING:
    from agentops.governance.approvals import Decision, request_approval

__all__ = [
    "TERMINAL",
    "AgentOpsError",
    "CacheContext",
    "Decision",
    "Flow",
    "RunFailed",
    "State",
    "StepFuture",
    "Task",
    "flow",
    "get_run_logger",
    "request_approval",
    "task",
    "wait",
]

_LAZY = {"request_approval": "agentops.governance.approvals", "Decision": "agentops.governance.approvals"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentops' has no attribute {name!r}")
