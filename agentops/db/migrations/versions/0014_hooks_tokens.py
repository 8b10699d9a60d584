"""hooks and tokens: API tokens' expiry, signed webhook deliveries (replays), refused authentications per minute

Revision ID: 0014_hooks_tokens
Revises: 0013_mcp_elicitation
Create Date: 2026-12-02 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014_hooks_tokens'
down_revision = '0013_mcp_elicitation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', sa.Float(), nullable=True))
    op.create_table(
        'hook_deliveries',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('hook', sa.String(length=200), nullable=False),
        sa.Column('signed_at', sa.Float(), nullable=False),
        sa.Column('seen_at', sa.Float(), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_hook_deliveries_signed', 'hook_deliveries', ['signed_at'])
    op.create_table(
        'auth_failures',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('minute', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('recorded', sa.Integer(), nullable=False),
        sa.Column('first_at', sa.Float(), nullable=False),
        sa.Column('last_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key', 'minute'),
    )
    op.create_index('ix_auth_failures_pending', 'auth_failures', ['minute'])


def downgrade() -> None:
    op.drop_index('ix_auth_failures_pending', table_name='auth_failures')
    op.drop_table('auth_failures')
    op.drop_index('ix_hook_deliveries_signed', table_name='hook_deliveries')
    op.drop_table('hook_deliveries')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('expires_at')
