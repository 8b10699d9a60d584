"""web_sessions: the app's logins, kept as SHA-256 digests of their random ids, with expiry and how they ended

Revision ID: 0010_web_sessions
Revises: 0009_mcp_pins
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_web_sessions'
down_revision = '0009_mcp_pins'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('user_name', sa.String(length=200), nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('ended_at', sa.Float(), nullable=True),
        sa.Column('end_reason', sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint('id_hash'),
    )


def downgrade() -> None:
    op.drop_table('web_sessions')
