"""log line keys: each line a run logs has its place in the flow, so a replay that logs it again stores nothing

Revision ID: 0016_log_line_keys
Revises: 0015_flow_queues
Create Date: 2026-12-03 10:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016_log_line_keys'
down_revision = '0015_flow_queues'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('log_lines') as batch:
        batch.add_column(sa.Column('line_key', sa.String(length=64), nullable=True))
    op.create_index('uq_log_lines_key', 'log_lines', ['run_id', 'line_key'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_log_lines_key', table_name='log_lines')
    with op.batch_alter_table('log_lines') as batch:
        batch.drop_column('line_key')
