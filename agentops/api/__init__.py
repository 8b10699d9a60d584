"""The HTTP API (FastAPI): what the CLI does, for other programs, as the account of a bearer token."""

from agentops.api.app import create_app

__all__ = ["create_app"]
