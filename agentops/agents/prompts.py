"""Prompt templates from <project>/prompts/, versioned by content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from agentops.errors import ConfigError


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    hash: str

    def render(self, **values: object) -> str:
        try:
            return self.text.format(**values) if values else self.text
        except KeyError as exc:
            raise ConfigError(f"prompt '{self.name}' needs a value for {exc}") from None


def load_prompt(root: Path, name: str) -> Prompt:
    """prompts/<name> (with or without .md/.txt). The hash names this exact version on every model call."""
    base = root / "prompts"
    for candidate in (base / name, base / f"{name}.md", base / f"{name}.txt"):
        if candidate.is_file():
            if base.resolve() not in candidate.resolve().parents:
                break
            text = candidate.read_text()
            return Prompt(name, text, hashlib.sha256(text.encode()).hexdigest())
    raise ConfigError(f"no prompt named '{name}' under {base} (expected {name}.md)")
