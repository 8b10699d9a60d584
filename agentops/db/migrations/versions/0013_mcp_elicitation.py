"""approvals.kind: 'approve' (a decision on a proposed call) or 'respond' (an MCP server's request for input,
answered with fields that fit its schema)

Revision ID: 0013_mcp_elicitation
Revises: 0011_notifications
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_mcp_elicitation'
down_revision = '0011_notifications'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('approvals') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='approve'))


def downgrade() -> None:
    with op.batch_alter_table('approvals') as batch:
        batch.drop_column('kind')
