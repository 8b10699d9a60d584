"""Agent loop benchmark: the overhead per tool call, model latency excluded, on SQLite.

    .venv/bin/python bench/agent_loop.py                  # add --profile for a cProfile summary of one run

A temporary project (a no-op `noop` tool in tools/, a policy allowing it, a one-line prompt) on a fresh
SQLite database. A scripted chat model (agentops.agents.models.scripted, no latency of its own) proposes the
calls, so what is timed is the agent loop: model/policy/tool steps, policy screening, budget checks and
the audit ledger. Per tool call = (t(N2 calls) - t(N1 calls)) / (N2 - N1), so the fixed cost of a run
(creating it, loading the prompt and policy, the final answer) cancels; median over repeats.
"plain Python" is the same scripted model and the same LangChain tool in a bare loop (bind_tools,
invoke, tool.invoke, ToolMessage) with no durability, policy or ledger. Three shapes:

  * 1 call per model turn: the model proposes one call, sees its result, proposes the next (a model
    step, a policy step and a tool step per call);
  * N calls in one turn: one model reply proposes all N calls (a policy step and a tool step per call);
  * Agent.use: the flow calls the tool itself through the agent, no model (a policy step and a tool step
    per call, plus the agent's per-call setup).

The cost per call of the first shape grows with the length of the conversation (try --n1 80 --n2 120).
The machine is shared and noisy; read ratios rather than absolute numbers, and the CPU columns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_MS = 2.0

NOOP_TOOL = '''
from langchain_core.tools import StructuredTool
from pydantic import BaseModel


class NoopArgs(BaseModel):
    x: int


def noop(x: int) -> dict:
    """Return the argument: no I/O, no effect."""
    return {"x": x}


TOOLS = [StructuredTool.from_function(func=noop, name="noop", args_schema=NoopArgs, description="Does nothing.")]
'''

POLICY = """version: 1
shadow: false
budgets:
  max_model_calls: 1000000
  max_tool_calls: 1000000
tools:
  noop:
    verdict: allow
"""

SYSTEM = "You are a benchmark agent. Call the noop tool when asked."
TASK = "Call noop."


def make_project(tmp: Path) -> Path:
    """A project with only the noop tool, its policy and a prompt; the environment points agentops at it."""
    root = tmp / "project"
    for folder in ("flows", "tools", "prompts", "policies"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "bench-agent-loop"\n')
    (root / "tools" / "__init__.py").write_text("")
    (root / "tools" / "noop.py").write_text(NOOP_TOOL)
    (root / "policies" / "default.yaml").write_text(POLICY)
    (root / "prompts" / "bench.md").write_text(SYSTEM)
    for name in list(os.environ):
        if name.startswith("AGENTOPS_"):
            del os.environ[name]
    os.environ["AGENTOPS_PROJECT_DIR"] = str(root)
    os.environ["AGENTOPS_DATABASE_URL"] = f"sqlite:///{tmp / 'agentops.db'}"
    return root


# -- the model's script ------------------------------------------------------------------------------


def tool_call(i: int) -> dict[str, Any]:
    return {"name": "noop", "args": {"x": i}, "id": f"call_{i}", "type": "tool_call"}


def script(shape: str, n: int) -> list[Any]:
    """The scripted model's replies: n noop calls (one per turn, or all in one turn), then an answer."""
    from langchain_core.messages import AIMessage

    if shape == "turns":
        replies = [AIMessage(content="", tool_calls=[tool_call(i)]) for i in range(n)]
    else:
        replies = [AIMessage(content="", tool_calls=[tool_call(i) for i in range(n)])]
    return [*replies, AIMessage(content="done")]


# -- the two engines ------------------------------------------------------------------------------------


class Agentops:
    """Runs each shape as a flow run through agentops.agents.Agent, in this process (as calling a flow does)."""

    def __init__(self, root: Path) -> None:
        from agentops import flow
        from agentops.agents import Agent
        from agentops.db import close_stores
        from agentops.engine.project import load_project
        from agentops.service.setup import init_project
        from agentops.settings import reset_settings

        close_stores()
        reset_settings()
        load_project()
        list(init_project())
        held: dict[str, Any] = {}
        self.held = held

        @flow(name="bench_agent_loop")
        def agent_loop(n: int) -> list[str]:
            agent = Agent(name="bench", prompt="bench", tools=["noop"], model=held["model"], max_turns=n + 2)
            return [o.status for o in agent.run(TASK).tool_calls]

        @flow(name="bench_agent_use")
        def agent_use(n: int) -> list[str]:
            agent = Agent(name="bench", prompt="bench", tools=["noop"])
            return [agent.use("noop", x=i).status for i in range(n)]

        self.loop_flow, self.use_flow = agent_loop, agent_use

    def prepare(self, shape: str, n: int) -> Callable[[], list[str]]:
        from agentops.agents.models.scripted import ScriptedChatModel

        if shape == "use":
            return lambda: self.use_flow(n)
        model = ScriptedChatModel(replies=script(shape, n))

        def go() -> list[str]:
            self.held["model"] = model
            return self.loop_flow(n)

        return go


class Plain:
    """The same scripted model and the same tool object, in a bare LangChain loop."""

    def __init__(self, root: Path) -> None:
        from agentops.engine.toolkit import load_tools

        self.tool = load_tools(root)["noop"]

    def prepare(self, shape: str, n: int) -> Callable[[], list[str]]:
        from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

        from agentops.agents.models.scripted import ScriptedChatModel

        tool = self.tool
        if shape == "use":
            return lambda: [json.dumps(tool.invoke({"x": i})) and "ok" for i in range(n)]
        model = ScriptedChatModel(replies=script(shape, n))

        def go() -> list[str]:
            bound = model.bind_tools([tool])
            messages: list[Any] = [SystemMessage(SYSTEM), HumanMessage(TASK)]
            statuses = []
            while True:
                ai = bound.invoke(messages)
                messages.append(ai)
                if not ai.tool_calls:
                    return statuses
                for call in ai.tool_calls:
                    result = tool.invoke(call["args"])
                    messages.append(ToolMessage(json.dumps(result), tool_call_id=call["id"], name=call["name"]))
                    statuses.append("ok")

        return go


# -- measuring -----------------------------------------------------------------------------------------


def timed(engine: Agentops | Plain, shape: str, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one run of n calls."""
    run = engine.prepare(shape, n)  # the scripted model is built outside the clock
    c0, t0 = time.process_time(), time.perf_counter()
    statuses = run()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if statuses != ["ok"] * n:
        raise SystemExit(f"{type(engine).__name__} {shape} n={n}: expected {n} ok calls, got {statuses[:5]}...")
    return elapsed, cpu


def per_call_ms(engine: Agentops | Plain, shape: str, n1: int, n2: int, repeats: int) -> tuple[float, float]:
    """(t(n2) - t(n1)) / (n2 - n1) in ms, wall and CPU, medians over repeats, after a warm-up."""
    timed(engine, shape, n1)
    wall, cpu = [], []
    for _ in range(repeats):
        w1, c1 = timed(engine, shape, n1)
        w2, c2 = timed(engine, shape, n2)
        wall.append((w2 - w1) / (n2 - n1) * 1000)
        cpu.append((c2 - c1) / (n2 - n1) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def profile(engine: Agentops, shape: str, n: int, top: int) -> None:
    import cProfile
    import pstats

    run = engine.prepare(shape, n)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    print(f"\ncProfile of one agentops run, shape '{shape}', {n} calls (sorted by own time, top {top}):")
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    print(f"cProfile of the same run by cumulative time (top {top}):")
    stats.sort_stats("cumulative").print_stats(top)


SHAPES = {"turns": "1 call per model turn", "batch": "N calls in one turn", "use": "Agent.use, no model"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="pairs of runs per measurement (median)")
    parser.add_argument("--n1", type=int, default=10, help="tool calls in the short run")
    parser.add_argument("--n2", type=int, default=40, help="tool calls in the long run")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {','.join(SHAPES)}")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile summary of one agentops run")
    parser.add_argument("--profile-shape", default="turns", choices=list(SHAPES))
    parser.add_argument("--top", type=int, default=25, help="rows of the cProfile summary")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]

    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp))
        engines = {"plain Python": Plain(root), "agentops": Agentops(root)}
        print(f"agent loop overhead per tool call in ms, model latency excluded, SQLite (target: under "
              f"{TARGET_MS:g} ms)\n(t({args.n2} calls) - t({args.n1} calls)) / {args.n2 - args.n1}, "
              f"median of {args.repeats}\n")
        print(f"{'shape':<24} {'plain ms/call':>14} {'agentops ms/call':>17} {'added':>7} {'ratio':>7}  "
              f"{'vs target':>9}  {'CPU ms/call: plain':>18} {'agentops':>9}")
        for shape in shapes:
            (plain, plain_cpu), (ours, ours_cpu) = (per_call_ms(engine, shape, args.n1, args.n2, args.repeats)
                                                    for engine in engines.values())
            added = ours - plain
            verdict = "met" if added < TARGET_MS else "MISSED"
            print(f"{SHAPES[shape]:<24} {plain:>14.3f} {ours:>17.3f} {added:>7.3f} {f'x{ours / plain:.1f}':>7}  "
                  f"{verdict:>9}  {plain_cpu:>18.3f} {ours_cpu:>9.3f}")
        print("\n'added' is what agentops adds per call over the bare loop running the same scripted model and"
              "\ntool: the overhead the target is about. ms/call is wall time; CPU ms/call is this process's CPU"
              "\ntime, steadier when the machine is busy. Per tool call agentops records a policy step and a tool"
              "\nstep (plus a model step per turn) with their ledger events, and checks the run's budget before"
              "\neach model turn and each tool call.")
        if args.profile:
            profile(engines["agentops"], args.profile_shape, args.n2, args.top)  # type: ignore[arg-type]
        from agentops.db import close_stores

        close_stores()


if __name__ == "__main__":
    main()
