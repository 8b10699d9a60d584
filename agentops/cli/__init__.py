"""The `agentops` command line: a typer app whose commands call agentops.service."""

from agentops.cli.main import app, main

__all__ = ["app", "main"]
