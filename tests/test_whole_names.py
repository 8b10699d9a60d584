"""A name, a key or a digest is checked whole: `$` also matches before a final line break, so a validator written
`^...$` lets "web-app\n" through into a URL, a file name or a comparison. Every whole-value pattern in the product
ends in `\\Z` (or is used with fullmatch), and the checks refuse a trailing line break."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentops.engine.mcp import McpFile

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("agentops", "tools", "flows", "app") for p in (ROOT / folder).rglob("*.py")]
SEARCHES = {"agentops/agents/models/intents.py:_QUESTION"}
"""Patterns that search text rather than check a whole value (a question's first word or its closing '?')."""
WHOLE_VALUE_PATTERN = re.compile(r"""re\.compile\(r?(["'])\^[^"']*(?<!\\)\$\1""")


def test_no_whole_value_pattern_in_the_product_ends_in_a_dollar() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}" for path in SOURCES
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if WHOLE_VALUE_PATTERN.search(line)
             and f"{path.relative_to(ROOT)}:{line.split('=')[0].strip()}" not in SEARCHES]
    assert found == [], "anchor whole values with \\Z or use fullmatch: " + ", ".join(found)


def test_the_scan_finds_a_dollar_anchored_pattern() -> None:
    assert WHOLE_VALUE_PATTERN.search('_NAME = re.compile(r"^[a-z]+$")')
    assert not WHOLE_VALUE_PATTERN.search('_NAME = re.compile(r"^[a-z]+\\Z")')


@pytest.mark.parametrize("name", ["ops\n", "ops\r\n", "o\nps"])
def test_an_mcp_server_name_with_a_line_break_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="server name"):
        McpFile.model_validate({"servers": {name: {"command": "true"}}})


def test_a_dataset_file_named_with_a_line_break_is_not_a_dataset(tmp_path: Path) -> None:
    from agentops.data.datasets import list_datasets

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("a,b\n1,2\n")
    (tmp_path / "data" / "evil\n.csv").write_text("a,b\n1,2\n")
    assert list(list_datasets(tmp_path)) == ["sales"]
