"""flow_runs.queue: the broker queue a run is sent to (NULL: AGENTOPS_BROKER_QUEUE), chosen when it is created

Revision ID: 0015_flow_queues
Revises: 0014_hooks_tokens
Create Date: 2026-12-03 10:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_flow_queues'
down_revision = '0014_hooks_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('flow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('flow_runs', schema=None) as batch_op:
        batch_op.drop_column('queue')
