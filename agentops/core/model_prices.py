"""What model calls cost: USD per million input and output tokens, by model name prefix.

Kept apart from the model factory so that reading a run's cost (the Runs page, the CLI) never imports a model
library."""

from __future__ import annotations

PRICES_PER_MILLION = {"gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.0, 8.0), "gpt-4o-mini": (0.15, 0.60)}
"""USD per million input/output tokens, for the per-run cost budget (unknown models cost 0)."""
FREE_MODELS = frozenset({"playbook"})
"""Models that run locally and cost nothing: the embedded playbook model."""


def _bare(model_name: str) -> str:
    return model_name.split(":")[-1]


def cost_usd(model_name: str, input_tokens: int, output_tokens: int) -> float:
    for prefix, (cin, cout) in PRICES_PER_MILLION.items():
        if _bare(model_name).startswith(prefix):
            return (input_tokens * cin + output_tokens * cout) / 1_000_000
    return 0.0


def price_known(model_name: str) -> bool:
    """Whether a model's cost can be worked out: a priced model, or a local one that is free."""
    bare = _bare(model_name)
    return bare in FREE_MODELS or any(bare.startswith(prefix) for prefix in PRICES_PER_MILLION)
