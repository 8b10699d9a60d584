"""mcp_pins: the accepted definition (name, description, input schema, annotations) of each MCP server tool

Revision ID: 0009_mcp_pins
Revises: 0008_alert_groups
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_mcp_pins'
down_revision = '0008_alert_groups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mcp_pins',
        sa.Column('server', sa.String(length=200), nullable=False),
        sa.Column('tool', sa.String(length=200), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('definition', sa.Text(), nullable=False),
        sa.Column('pinned_by', sa.String(length=200), nullable=False),
        sa.Column('pinned_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('server', 'tool'),
    )


def downgrade() -> None:
    op.drop_table('mcp_pins')
