"""A run's budgets (model calls, tool calls, tokens, cost), checked and taken in one step per call.

The steps of one run can run at once (`task.map`, `submit`, several agents), so "is there budget left?"
and "use it" must not be two steps: a slot is taken under the run's lock by the step about to use it,
inside that step, so a replayed step (recorded earlier) neither checks nor counts again.

- A model call takes a model-call slot when its step starts, if no budget is spent yet.
- A proposed tool call takes a tool-call slot in its policy step and keeps it when the policy lets the
  call through (allowed or sent for approval, like a rate slot); a refused proposal gives it back.
- Tokens and cost are known only once a reply arrives: they are checked before each model call against
  what the run has recorded, so a run can end past its token or cost budget by the calls already under
  way (one per model call running at the same time).

The lock is per process: a run executes in one process at a time (a worker claims it, and the lease
epoch fences off a worker that lost it), and on resume the counts are rebuilt from the recorded steps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from agentops.core import serialization
from agentops.core.ledger import Event
from agentops.engine.context import BudgetUsage, RunContext
from agentops.errors import BudgetExceeded

if TYPE_CHECKING:
    from agentops.db.records import StepRecord
    from agentops.governance.policy import Policy

ADMITTED = ("allow", "require_approval")
"""Policy-step statuses that keep their tool-call slot."""


def _admitted(step: StepRecord) -> bool:
    if step.output is None:
        return False
    try:
        return serialization.loads(step.output).get("status") in ADMITTED
    except Exception:
        return True


@dataclass
class ToolSlot:
    kept: bool = False
    """Set when the call passed the policy: the slot stays taken."""


class RunBudget:
    """The model-call and tool-call slots one run has taken; tokens and cost come from its recorded steps."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        steps = list(ctx.recorded.values())
        self.model_calls = sum(1 for s in steps if s.kind == "model")
        self.tool_calls = sum(1 for s in steps if s.kind == "policy" and _admitted(s))

    @classmethod
    def of(cls, ctx: RunContext) -> RunBudget:
        """The run's one budget, shared by all its threads and agents."""
        found = ctx.extras.get("governance.budget")
        if found is None:
            found = ctx.extras.setdefault("governance.budget", cls(ctx))
        return found

    def usage(self) -> BudgetUsage:
        recorded = self.ctx.usage()
        return BudgetUsage(self.model_calls, self.tool_calls, recorded.tokens, recorded.cost_usd)

    def take_model_call(self, policy: Policy, agent: str) -> None:
        """Count one model call, or raise BudgetExceeded (recorded in the ledger) when any budget is spent."""
        with self._lock:
            reason = policy.check_budget(self.usage())
            if reason is None:
                self.model_calls += 1
                return
        self._refuse(policy, agent, reason)

    @contextmanager
    def tool_call(self, policy: Policy, agent: str) -> Iterator[ToolSlot]:
        """Take one tool-call slot for a proposed call (BudgetExceeded, recorded, when the budget is spent);
        it is given back on leaving unless the caller marks it kept (the policy let the call through)."""
        with self._lock:
            reason = policy.check_budget(self.usage(), only=("tool_calls",))
            if reason is None:
                self.tool_calls += 1
        if reason is not None:
            self._refuse(policy, agent, reason)
        slot = ToolSlot()
        try:
            yield slot
        finally:
            if not slot.kept:
                with self._lock:
                    self.tool_calls -= 1

    def _refuse(self, policy: Policy, agent: str, reason: str) -> NoReturn:
        self.ctx.store.append_events([Event(actor="system:policy", action="budget.exceeded", run_id=self.ctx.run_id,
                                            policy_hash=policy.hash, payload={"agent": agent, "reason": reason})])
        raise BudgetExceeded(f"agent '{agent}' stopped: {reason}")
