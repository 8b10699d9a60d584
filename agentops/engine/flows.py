"""The @flow decorator and flow parameters validated from type hints."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agentops.core.serialization import non_finite_at
from agentops.engine import registry
from agentops.engine.runner import call_flow
from agentops.errors import ParameterError
from agentops.settings import check_queue_name, get_settings

P = ParamSpec("P")
R = TypeVar("R")

class Flow(Generic[P, R]):
    """A function registered as a flow. Calling it runs it now, in this process, as a recorded run.

    Flows must be deterministic between steps: on resume the function runs again from the top and
    each task call at a recorded step number returns the recorded output instead of running.
    """

    def __init__(self, fn: Callable[P, R], *, name: str | None = None, description: str | None = None,
                 log_prints: bool = False, tags: tuple[str, ...] = (), queue: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn) or ""
        self.log_prints = log_prints
        self.tags = tags
        self.queue = None if queue is None else check_queue_name(queue)
        """The broker queue its runs are sent to (AGENTOPS_FLOW_QUEUES overrides it); None: AGENTOPS_BROKER_QUEUE."""
        self.is_async = inspect.iscoroutinefunction(fn)
        self._params_model: type[BaseModel] | None = None
        functools.update_wrapper(self, fn)
        registry.register(self)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    @property
    def params_model(self) -> type[BaseModel]:
        if self._params_model is None:
            hints = typing.get_type_hints(self.fn, include_extras=True)  # keeps Annotated[..., Field(...)]
            fields: dict[str, Any] = {}
            for pname, param in inspect.signature(self.fn).parameters.items():
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                annotation = hints.get(pname, Any)
                default = ... if param.default is param.empty else param.default
                fields[pname] = (annotation, default)
            self._params_model = create_model(
                f"{self.name}_parameters", __config__=ConfigDict(extra="forbid"), **fields
            )
        return self._params_model

    def run_queue(self) -> str | None:
        """The queue a new run of this flow goes to: AGENTOPS_FLOW_QUEUES' entry, else `queue`; None: the default."""
        return get_settings().flow_queues.get(self.name, self.queue)

    def parameter_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()

    def validate_parameters(self, values: dict[str, Any]) -> dict[str, Any]:
        """Parameters checked and coerced by the flow's type hints; ParameterError names the first problem."""
        try:
            model = self.params_model.model_validate(values)
        except ValidationError as exc:
            raise ParameterError(f"flow '{self.name}': {describe_validation_error(exc)}") from None
        checked = {name: getattr(model, name) for name in type(model).model_fields}
        for name, value in checked.items():
            if (at := non_finite_at(value, name)) is not None:
                raise ParameterError(f"flow '{self.name}': parameter '{at}' is NaN or an infinity, "
                                     f"which a run's parameters cannot hold")
        return checked

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return call_flow(self, args, kwargs)


def describe_validation_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    if err["type"] == "missing":
        return f"parameter '{where}' is required"
    if err["type"] == "extra_forbidden":
        return f"unknown parameter '{where}'"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    said = str(err["ctx"]["error"]) if err["type"] == "value_error" and "error" in err.get("ctx", {}) else err["msg"]
    return f"parameter '{where}': {said} (got {err.get('input')!r}){more}"


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(*, name: str | None = None, description: str | None = None, log_prints: bool = False,
         tags: tuple[str, ...] = (), queue: str | None = None) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a flow: `@flow` or `@flow(name="...", log_prints=True, queue="reports")`."""
    if fn is not None:
        return Flow(fn)
    return lambda f: Flow(f, **options)
