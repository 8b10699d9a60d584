"""MCP benchmark: what a governed MCP call costs over a direct call with the SDK to the same local server.

    .venv/bin/python bench/mcp_calls.py                 # --calls 20

The server is the tests' `ops` server (tests/mcp_servers/ops_server.py) over stdio, its read-only `status` tool.

* direct, session per call: the SDK's Client opens a session (spawning the server), calls, closes.
* direct, one kept session: one Client, every call in it (the floor: no process start).
* governed (Agent.use in a flow): the whole path of an agent's MCP call, timed per call inside a run on SQLite:
  the policy step (whitelist, the server's JSON Schema, the policy, a budget slot, the pin on first use), the tool
  step with its idempotency key, and the call itself, which opens its own session (spawning the server), lists
  the tools to check the live definition against the screened and pinned digest, then calls.

* governed, kept session (AGENTOPS_MCP_KEEP_SESSIONS=1): the same path, the process keeping one session per
  server (the definition listing and the call still share it).

The added cost is governed minus direct in the same mode (a session per call, or a kept one). Medians (p50) and
p90 per call; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = ROOT / "tests" / "mcp_servers" / "ops_server.py"


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def direct(calls: int) -> tuple[list[float], list[float]]:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), "stdio"], env={"PATH": "/usr/bin:/bin"})
    per_call: list[float] = []
    kept: list[float] = []

    async def run() -> None:
        for _ in range(calls):
            start = time.perf_counter()
            async with Client(params) as client:
                await client.call_tool("status", {"service": "web"})
            per_call.append(time.perf_counter() - start)
        async with Client(params) as client:
            await client.call_tool("status", {"service": "web"})
            for _ in range(calls):
                start = time.perf_counter()
                await client.call_tool("status", {"service": "web"})
                kept.append(time.perf_counter() - start)

    anyio.run(run)
    return per_call, kept


def governed(calls: int, *, keep: bool, name: str) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="agentops-bench-mcp-"))
    for folder in ("flows", "prompts", "policies"):
        (tmp / folder).mkdir()
    (tmp / "pyproject.toml").write_text('[project]\nname = "bench-mcp"\n')
    (tmp / "prompts" / "incident.md").write_text((ROOT / "prompts" / "incident.md").read_text())
    (tmp / "policies" / "default.yaml").write_text(
        f"version: 1\nbudgets: {{max_tool_calls: {calls + 10}}}\ntools:\n  ops.status: {{verdict: allow}}\n")
    (tmp / "mcp.yaml").write_text(f'servers:\n  ops:\n    command: {sys.executable}\n'
                                  f'    args: ["{SERVER}", "stdio"]\n    tools: [status]\n')
    os.environ["AGENTOPS_PROJECT_DIR"] = str(tmp)
    os.environ["AGENTOPS_DATABASE_URL"] = f"sqlite:///{tmp / 'agentops.db'}"
    os.environ["AGENTOPS_MCP_KEEP_SESSIONS"] = "1" if keep else "0"

    from agentops import flow
    from agentops.agents import Agent
    from agentops.settings import reset_settings

    reset_settings()

    @flow(name=name)
    def bench_mcp_governed(n: int) -> list[float]:
        agent = Agent(name="bench", prompt="incident", tools=["ops.status"])
        agent.use("ops.status", service="web")  # the agent's first use lists the server and pins the tool
        out = []
        for _ in range(n):
            start = time.perf_counter()
            outcome = agent.use("ops.status", service="web")
            out.append(time.perf_counter() - start)
            assert outcome.status == "ok", outcome.content
        return out

    result: Any = bench_mcp_governed(calls)
    return list(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    per_call, kept = direct(args.calls)
    gov = governed(args.calls, keep=False, name="bench_mcp_governed")
    gov_kept = governed(args.calls, keep=True, name="bench_mcp_governed_kept")
    from agentops.engine.mcp_sessions import pool

    pool().close()
    d50, d90 = stats(per_call)
    k50, k90 = stats(kept)
    g50, g90 = stats(gov)
    gk50, gk90 = stats(gov_kept)
    print(f"MCP call to a local stdio server, {args.calls} calls each (ms per call)\n")
    print(f"| {'path':<40} | {'p50':>8} | {'p90':>8} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 10}|")
    for name, p50, p90 in [("direct SDK, session per call", d50, d90), ("direct SDK, one kept session", k50, k90),
                           ("governed (Agent.use), session per call", g50, g90),
                           ("governed (Agent.use), kept session", gk50, gk90)]:
        print(f"| {name:<40} | {p50 * 1000:8.1f} | {p90 * 1000:8.1f} |")
    print(f"\nadded by governance (p50): {(g50 - d50) * 1000:.1f} ms with a session per call, "
          f"{(gk50 - k50) * 1000:.1f} ms with a kept session")


if __name__ == "__main__":
    main()
