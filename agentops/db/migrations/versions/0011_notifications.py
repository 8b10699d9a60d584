"""notifications: the outbox of messages telling approvers of a request (requested, reminder, escalation)

Revision ID: 0011_notifications
Revises: 0010_web_sessions
Create Date: 2026-12-02 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_notifications'
down_revision = '0010_web_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notifications',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('approval_id', sa.String(length=32), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('recipients', sa.Text(), nullable=False),
        sa.Column('due_at', sa.Float(), nullable=False),
        sa.Column('next_at', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('lease_until', sa.Float(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.Column('delivered_at', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notifications_next', 'notifications', ['status', 'next_at'])
    op.create_index('ix_notifications_approval_id', 'notifications', ['approval_id'])


def downgrade() -> None:
    op.drop_index('ix_notifications_approval_id', table_name='notifications')
    op.drop_index('ix_notifications_next', table_name='notifications')
    op.drop_table('notifications')
