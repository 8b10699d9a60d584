"""outbox delivery state: queued, sending, delivered (with the server's reply), failed (with the reason), uncertain

Rows written before this revision are marked `delivered`: that is what the tool reported for them.

Revision ID: 0006_outbox_delivery
Revises: 0005_rate_use_id
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_outbox_delivery'
down_revision = '0005_rate_use_id'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=False, server_default='delivered'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('server_reply', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('failure', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('retryable', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('updated_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        for column in ('delivered_at', 'updated_at', 'retryable', 'failure', 'server_reply', 'attempts', 'status',
                       'message_id'):
            batch_op.drop_column(column)
