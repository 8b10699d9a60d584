"""The smallest flow: one task, for checking an installation and timing a cold start."""

from typing import Annotated

from pydantic import Field

from agentops import flow, task


@task
def greet(name: str) -> str:
    return f"Hello, {name}!"


@flow
def hello(name: Annotated[str, Field(min_length=1, max_length=100)] = "world") -> str:
    """Say hello: one recorded step."""
    return greet(name)
