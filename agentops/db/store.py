"""The Store: every SQL statement agentops runs, split by owner. Build one with `open_store(url)`.

SQLite (WAL, the embedded default) and PostgreSQL share every statement. Each owner's statements live in
their own module of agentops.db; this class puts them together.
"""

from __future__ import annotations

from agentops.db.alerts import AlertsSQL
from agentops.db.backends import BackendsSQL
from agentops.db.chat import ChatSQL
from agentops.db.governance import GovernanceSQL
from agentops.db.hooks import HooksSQL
from agentops.db.mcp import McpSQL
from agentops.db.metrics import MetricsSQL
from agentops.db.scheduling import SchedulingSQL
from agentops.db.sessions import SessionsSQL


class Store(GovernanceSQL, SchedulingSQL, BackendsSQL, ChatSQL, AlertsSQL, McpSQL, SessionsSQL, HooksSQL,
            MetricsSQL):
    """Database access for the whole of agentops."""
