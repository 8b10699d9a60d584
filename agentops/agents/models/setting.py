"""AGENTOPS_MODEL checked before a run is created: a provider langchain knows, with its package installed."""

from __future__ import annotations

import importlib.util

from agentops.agents.models.playbook import NAME as PLAYBOOK
from agentops.errors import ConfigError


def check_model_setting(spec: str | None) -> None:
    """Refuse a model string that init_chat_model could never build (a ConfigError naming the setting)."""
    if spec is None or spec == PLAYBOOK:
        return
    from langchain.chat_models.base import _BUILTIN_PROVIDERS, _parse_model  # langchain is pinned below 2

    try:
        _, provider = _parse_model(spec, None)
    except ValueError:
        raise ConfigError(f"setting AGENTOPS_MODEL={spec!r}: no known provider; write provider:model, "
                          f"e.g. openai:gpt-4.1-mini (providers: {', '.join(sorted(_BUILTIN_PROVIDERS))})") from None
    if provider not in _BUILTIN_PROVIDERS:
        raise ConfigError(f"setting AGENTOPS_MODEL={spec!r}: unknown provider '{provider}'")
    package = _BUILTIN_PROVIDERS[provider][0].split(".")[0]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"setting AGENTOPS_MODEL={spec!r}: the provider's package {package.replace('_', '-')} "
                          "is not installed")
