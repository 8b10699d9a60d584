"""claim index: the oldest claimable run (PENDING or CRASHED) by a partial index on created_at, so a claim reads
one index entry instead of every queued run (the old index covered PENDING only, which the claim could not use)

Revision ID: 0017_claim_index
Revises: 0016_log_line_keys
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017_claim_index'
down_revision = '0016_log_line_keys'
branch_labels = None
depends_on = None

CLAIMABLE = sa.text("state IN ('CRASHED', 'PENDING')")
PENDING = sa.text("state = 'PENDING'")


def upgrade() -> None:
    with op.batch_alter_table('flow_runs') as batch_op:
        batch_op.drop_index('ix_flow_runs_queued', sqlite_where=PENDING, postgresql_where=PENDING)
        batch_op.create_index('ix_flow_runs_claimable', ['created_at'], unique=False, sqlite_where=CLAIMABLE,
                              postgresql_where=CLAIMABLE)


def downgrade() -> None:
    with op.batch_alter_table('flow_runs') as batch_op:
        batch_op.drop_index('ix_flow_runs_claimable', sqlite_where=CLAIMABLE, postgresql_where=CLAIMABLE)
        batch_op.create_index('ix_flow_runs_queued', ['created_at'], unique=False, sqlite_where=PENDING,
                              postgresql_where=PENDING)
