"""Configuration files in YAML, validated by a pydantic model, each problem one `file:line: path: message` error."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agentops.errors import ConfigError

Lines = dict[tuple[Any, ...], int]
M = TypeVar("M", bound=BaseModel)


def key_lines(node: yaml.Node, label: str, path: tuple[Any, ...] = ()) -> Lines:
    """Line number (1-based) of every mapping key and sequence item, by its path. A key given twice in one
    mapping is an error (YAML would silently keep the last one)."""
    lines: Lines = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            here = (*path, key_node.value)
            if here in lines:
                where = ".".join(str(p) for p in here)
                raise ConfigError(f"{label}:{key_node.start_mark.line + 1}: {where}: given twice "
                                  f"(first on line {lines[here]})")
            lines[here] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, label, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            lines.update(key_lines(item, label, (*path, i)))
    return lines


def line_of(lines: Lines, loc: tuple[Any, ...]) -> int:
    """The line of `loc`, or of its nearest enclosing key that has one."""
    return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)


def parse_yaml(text: str, label: str, model: type[M], *, not_mapping: str) -> tuple[M, Lines]:
    """`text` validated as `model`, with the line of every key; `not_mapping` is the error for a non-mapping."""
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{label}{at}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}:1: {not_mapping}")
    lines = key_lines(node, label) if node is not None else {}
    try:
        return model.model_validate(raw), lines
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in ("function-after",)))
        where = ".".join(str(p) for p in loc)
        got = f" (got {err['input']!r})" if err["type"] not in ("missing", "extra_forbidden", "value_error") else ""
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{label}:{line_of(lines, loc)}: {where}: {msg}{got}") from None
