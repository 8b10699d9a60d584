"""The registry of flows by name, filled as @flow decorates functions and as the project's flows/ load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentops.engine.project import load_project
from agentops.errors import UnknownFlowError

if TYPE_CHECKING:
    from agentops.engine.flows import Flow

_registry: dict[str, Flow[Any, Any]] = {}


def register(flow: Flow[Any, Any]) -> None:
    """Add a flow under its name; a second flow of that name from another module is an error."""
    existing = _registry.get(flow.name)
    if existing is not None and existing.fn.__module__ != flow.fn.__module__:
        raise ValueError(
            f"flow name '{flow.name}' is already used by {existing.fn.__module__}.{existing.fn.__qualname__}; "
            "pass @flow(name=...) to tell them apart"
        )
    _registry[flow.name] = flow


def registered_flows() -> dict[str, Flow[Any, Any]]:
    return dict(_registry)


def get_flow(name: str) -> Flow[Any, Any]:
    found = _registry.get(name)
    if found is None:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownFlowError(f"unknown flow '{name}' (known flows: {known})")
    return found


def find_flow(name: str) -> Flow[Any, Any]:
    """A flow by name, after loading the project's flows/."""
    load_project()
    return get_flow(name)
