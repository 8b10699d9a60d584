"""rate_events.use_id: the step that took a rate slot, so a step run again after a crash is the same use

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_rate_use_id'
down_revision = '0004_ledger_checkpoints'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rate_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('use_id', sa.String(length=80), nullable=True))
        batch_op.create_index('ux_rate_events_use_id', ['use_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('rate_events', schema=None) as batch_op:
        batch_op.drop_index('ux_rate_events_use_id')
        batch_op.drop_column('use_id')
