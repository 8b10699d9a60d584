"""`runs show --json` nests every JSON value, a tool's content (the text its model was given) included: no string
anywhere in the document spells a JSON object or array."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentops import service
from agentops.db import open_store
from agentops.engine.worker import Worker
from agentops.service.documents import run_detail_document
from tests.app_fixtures import add_repository_content


def json_strings(value: Any, where: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in json_strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in json_strings(v, f"{where}[{i}]")]
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            json.loads(value)
        except ValueError:
            return []
        return [where]
    return []


def test_a_runs_tool_steps_nest_their_content(ops_project: Path) -> None:
    add_repository_content(ops_project)
    run_id = service.start_run("incident_response", {"deployment": "web-app", "note": "95% CPU"})
    Worker(open_store(), poll_seconds=0.01).run(burst=True)
    document = run_detail_document(run_id)
    tools = [s for s in document["steps"] if s["kind"] == "tool"]
    assert tools and isinstance(tools[0]["output"]["content"], dict), tools[0]["output"]
    assert tools[0]["output"]["content"] == tools[0]["output"]["result"]
    assert json_strings(document) == []


def test_content_that_is_text_or_broken_json_stays_text(ops_project: Path) -> None:
    from agentops.service.documents import _nested

    assert _nested("Hello, world!") == "Hello, world!"
    assert _nested("[not json") == "[not json"
    assert _nested(' {"a": [1, 2]}') == {"a": [1, 2]}
