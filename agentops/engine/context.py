"""What the engine knows about the run and the step executing in the current thread or task."""

from __future__ import annotations

import hashlib
import itertools
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentops.errors import LeaseLost

if TYPE_CHECKING:
    from agentops.db import Store
    from agentops.db.records import StepRecord


@dataclass
class BudgetUsage:
    """What a run's model and tool steps have used so far; the policy's per-run budgets are checked against it."""

    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, kind: str, *, new_step: bool, tokens: int = 0, cost: float = 0.0) -> None:
        if new_step and kind == "model":
            self.model_calls += 1
        elif new_step and kind == "tool":
            self.tool_calls += 1
        self.tokens += tokens
        self.cost_usd += cost


@dataclass
class RunContext:
    """State shared by every step of one executing flow run."""

    run_id: str
    flow_name: str
    store: Store
    recorded: dict[int, StepRecord]
    worker_id: str
    epoch: int
    """The run's epoch when this execution claimed it: its lease. Every write on its behalf checks it."""
    log_prints: bool = False
    lease_revoked: threading.Event = field(default_factory=threading.Event)
    """Set when the heartbeat finds the run no longer RUNNING under this epoch (taken over, recovered, cancelled)."""
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    _counter_lock: threading.Lock = field(default_factory=threading.Lock)
    _logs: list[dict[str, Any]] = field(default_factory=list)
    _logs_lock: threading.Lock = field(default_factory=threading.Lock)
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-run state of higher layers (the policy in force, ...)."""
    _usage: BudgetUsage = field(default_factory=BudgetUsage)
    _usage_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_step_no: int = 0
    _lines_at: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for step in self.recorded.values():
            self._usage.add(step.kind, new_step=True, tokens=step.tokens or 0, cost=step.cost or 0.0)

    def count_step(self, kind: str, *, new_step: bool, tokens: int = 0, cost: float = 0.0) -> None:
        """Account for a step this process has just stored (the run executes in one process at a time)."""
        with self._usage_lock:
            self._usage.add(kind, new_step=new_step, tokens=tokens, cost=cost)

    def usage(self) -> BudgetUsage:
        with self._usage_lock:
            return BudgetUsage(**vars(self._usage))

    def lease_lost(self, where: str) -> LeaseLost:
        return LeaseLost(self.run_id, self.epoch, where)

    def check_fence(self) -> None:
        """Raise LeaseLost unless this execution still holds the run (one read of its epoch)."""
        if self.lease_revoked.is_set() or not self.store.holds_lease(self.run_id, self.epoch):
            raise self.lease_lost("before an effect")

    def next_step_no(self) -> int:
        with self._counter_lock:
            self._last_step_no = next(self._counter)
            return self._last_step_no

    def line_key(self, step_no: int | None, level: str, message: str) -> str:
        """A log line's place in the run, the same when a replay logs it again. Between steps (in the flow's own
        code, which every execution runs again from the top): after which step, a short hash of the line's level
        and words, and how many times those words were logged there before, so a replay's same line lands on its
        first key and a different line logged at that place (an except branch first, success on the resume) is
        kept as well. Inside a step (whose body runs only when it is not replayed): the step, this execution's epoch
        and the line's number, so a step that runs again after a crash keeps the lines of both tries."""
        digest = hashlib.sha256(f"{level}\0{message}".encode()).hexdigest()[:16] if step_no is None else ""
        with self._counter_lock:
            anchor = f"f{self._last_step_no}.{digest}" if step_no is None else f"s{step_no}.e{self.epoch}"
            seq = self._lines_at.get(anchor, 0)
            self._lines_at[anchor] = seq + 1
        return f"{anchor}.{seq}"

    def add_log(self, line: dict[str, Any]) -> None:
        with self._logs_lock:
            self._logs.append(line)

    def take_logs(self) -> list[dict[str, Any]]:
        with self._logs_lock:
            logs, self._logs = self._logs, []
        return logs


@dataclass(frozen=True)
class StepInfo:
    """The step executing in this thread: its number, task name and whether prints are captured."""

    step_no: int
    name: str
    log_prints: bool


current_run: ContextVar[RunContext | None] = ContextVar("agentops_run", default=None)
current_step: ContextVar[StepInfo | None] = ContextVar("agentops_step", default=None)


def get_run_context() -> RunContext | None:
    return current_run.get()
