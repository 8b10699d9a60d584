"""alert_groups: each Alertmanager alert group and the run its firing started, for deduplication

Revision ID: 0008_alert_groups
Revises: 0007_api_tokens
Create Date: 2026-12-02 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_alert_groups'
down_revision = '0007_api_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_groups',
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('group_key', sa.Text(), nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.String(length=32), nullable=True),
        sa.Column('claimed_at', sa.Float(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key_hash'),
    )


def downgrade() -> None:
    op.drop_table('alert_groups')
