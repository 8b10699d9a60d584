"""Governed LLM agents: a tool-calling loop whose every model call and tool call is a durable step."""

from agentops.agents.loop import Agent, AgentResult, ToolOutcome

__all__ = ["Agent", "AgentResult", "ToolOutcome"]
