"""The smallest flow: one task, for checking an installation and timing a cold start."""

from agentops import flow, task


@task
def greet(name: str) -> str:
    return f"Hello, {name}!"


@flow
def hello(name: str = "world") -> str:
    """Say hello: one recorded step."""
    return greet(name)
