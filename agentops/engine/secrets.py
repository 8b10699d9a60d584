"""Secret flow parameters: declared `SecretStr` in the flow's signature, passed to the flow, never stored in clear.

A secret parameter is stored as a reference. `env:NAME` is read from the environment of the process that
executes the run, at every execution, so a queued or resumed run gets the value where it runs. A value given
directly (a Python call, `agentops run` executing now) lives only in this process's memory for that run: the row
holds `{"$secret": "inline"}`, and a resume in another process fails with a clear message instead of running with
a wrong value.
"""

from __future__ import annotations

import os
import threading
import typing
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from agentops.errors import ParameterError

if TYPE_CHECKING:
    from agentops.engine.flows import Flow

ENV_PREFIX = "env:"
INLINE = {"$secret": "inline"}

_inline: dict[tuple[str, str], SecretStr] = {}
_inline_lock = threading.Lock()


def secret_names(flow: Flow[Any, Any]) -> list[str]:
    """The flow's parameters declared SecretStr (or SecretStr | None)."""
    names = []
    for name, field in flow.params_model.model_fields.items():
        annotation = field.annotation
        options = typing.get_args(annotation) or (annotation,)
        if SecretStr in options:
            names.append(name)
    return names


def store_form(flow: Flow[Any, Any], run_id: str, params: dict[str, Any], *, inline_allowed: bool) -> dict[str, Any]:
    """The parameters as they may be stored: secret values replaced by their reference."""
    stored = dict(params)
    for name in secret_names(flow):
        value = params.get(name)
        if value is None:
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if text.startswith(ENV_PREFIX) and text[len(ENV_PREFIX):].isidentifier():
            stored[name] = text
            continue
        if not inline_allowed:
            raise ParameterError(f"flow '{flow.name}': parameter '{name}' is secret; a queued run needs a reference "
                                 f"such as env:NAME (read where the run executes), not the value")
        with _inline_lock:
            _inline[(run_id, name)] = SecretStr(text)
        stored[name] = INLINE
    return stored


def resolve(flow: Flow[Any, Any], run_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    """The parameters to call the flow with: references resolved here, now (raises ParameterError)."""
    params = dict(stored)
    for name in secret_names(flow):
        value = stored.get(name)
        if value is None:
            continue
        if value == INLINE:
            with _inline_lock:
                found = _inline.get((run_id, name))
            if found is None:
                raise ParameterError(f"secret parameter '{name}' was passed as a value and is not stored, so this "
                                     "process cannot resume the run; start it again, or pass env:NAME")
            params[name] = found
            continue
        variable = str(value).removeprefix(ENV_PREFIX)
        if variable not in os.environ:
            raise ParameterError(f"secret parameter '{name}' refers to the environment variable {variable}, "
                                 "which is not set where the run executes")
        params[name] = SecretStr(os.environ[variable])
    return params


def forget(run_id: str) -> None:
    """Drop a finished run's in-memory secrets."""
    with _inline_lock:
        for key in [k for k in _inline if k[0] == run_id]:
            del _inline[key]
