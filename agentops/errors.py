"""The exceptions agentops raises. Each message is one line that says what was wrong and what to do."""

from __future__ import annotations


class AgentOpsError(Exception):
    """Base of every error agentops raises on purpose. The CLI prints it as one line and exits 2."""


class ConfigError(AgentOpsError):
    """A setting, a project file or a policy file is wrong."""


class UnknownFlowError(AgentOpsError):
    """No flow of that name is registered or discoverable under flows/."""


class ParameterError(AgentOpsError):
    """Flow parameters failed validation against the flow's type hints."""


class NotFoundError(AgentOpsError):
    """A run, approval, schedule or user does not exist."""


class MetricsUnavailable(AgentOpsError):
    """The metrics backend could not answer: Prometheus is down, refused the query, or has no series for it."""


class ScheduleError(AgentOpsError):
    """A schedule's cron expression, interval, timezone or catch-up policy is wrong."""


class InvalidStateError(AgentOpsError):
    """The action does not apply to the object's current state (e.g. resuming a completed run)."""


class NonDeterministicFlowError(AgentOpsError):
    """On replay, the flow called a different task at a recorded step number."""


class SerializationError(AgentOpsError):
    """A step's inputs or result cannot be stored as JSON."""


class TaskTimeoutError(AgentOpsError):
    """A task ran longer than its timeout_seconds."""


class PermissionDenied(AgentOpsError):
    """The acting user's role does not allow the action, or the user is unknown."""


class TokenRefused(PermissionDenied):
    """A presented API token that does not authenticate: `reason` says why (unknown, revoked, expired), `name`
    is the token's when it is known. Never carries the token itself."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(f"{reason} API token")
        self.reason, self.name = reason, name


class HookRefused(AgentOpsError):
    """A webhook request that does not authenticate (unsigned, bad signature, stale, replayed, unknown hook)."""

    def __init__(self, reason: str, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.reason, self.status = reason, status


class ApiError(AgentOpsError):
    """agentops.client: the API refused a request or could not be reached; `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ApiUnavailable(ApiError):
    """agentops.client: no answer (connection refused, timed out, DNS)."""


class ApiUnauthorized(ApiError):
    """agentops.client: 401, the token is missing, unknown, revoked or expired."""


class ApiForbidden(ApiError):
    """agentops.client: 403, the token's role or the policy does not allow it."""


class ApiNotFound(ApiError):
    """agentops.client: 404, no such run, approval or flow."""


class ApiConflict(ApiError):
    """agentops.client: 409, decided already, a stale digest, a run that has ended."""


class ApiInvalid(ApiError):
    """agentops.client: 422 (or 400), parameters or a body the API does not accept."""


class ApiProtocolError(ApiError):
    """agentops.client: an answer that is not what the API sends (not JSON, another shape, a 5xx)."""


class ApprovalError(AgentOpsError):
    """An approval decision was refused: decided already, stale digest, expired, or self-approval."""


class ApprovalMismatch(ApprovalError):
    """At execution, what a run would act on is not what the ledger says was approved; nothing runs."""


class LedgerError(AgentOpsError):
    """The audit ledger cannot be written or checkpointed as it stands (its high-water mark is gone, the chain
    since the last checkpoint does not verify)."""


class PolicyViolation(AgentOpsError):
    """The policy denied an action or its arguments."""


class BudgetExceeded(AgentOpsError):
    """A run used up one of its budgets (model calls, tool calls, tokens, cost)."""


class ModelReplyError(AgentOpsError):
    """The model answered, but with something that is not a usable reply (no choices, a body that is not a chat
    completion, a tool call that names no known tool or whose arguments are not a JSON object, a cut-off stream),
    or the call failed in a way that does not mean the model is unreachable. Never an action; retried, then fatal."""


class RunBusy(AgentOpsError):
    """Another transaction held the run's row lock longer than the claim's lock timeout; try the claim again."""


class FlowPaused(BaseException):
    """Raised inside a run to unwind it while it waits (for an approval). Not an error.

    A BaseException, so that user code's `except Exception` cannot swallow the pause.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaseLost(BaseException):
    """Raised inside an execution whose run was taken from it (claimed again after a stall, recovered as crashed,
    cancelled): the run's epoch moved past the one this execution holds, so every write it attempts is refused.

    A BaseException, so that user code's `except Exception` cannot swallow it; the execution stops and writes
    nothing more except a `run.lease_lost` event in the ledger.
    """

    def __init__(self, run_id: str, epoch: int, where: str) -> None:
        super().__init__(f"run {run_id}: this execution's lease (epoch {epoch}) was taken over; stopped {where}")
        self.run_id = run_id
        self.epoch = epoch
        self.where = where


class RunFailed(AgentOpsError):
    """Raised by a direct flow call whose run failed; carries the run id."""

    def __init__(self, run_id: str, error: str) -> None:
        super().__init__(error)
        self.run_id = run_id
