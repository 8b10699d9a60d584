"""ledger checkpoints and the ledger's high-water mark

Revision ID: 0004_ledger_checkpoints
Revises: 0002_run_epoch
Create Date: 2026-12-03

`ledger_head` holds the last sequence number handed out and its hash; appends take their numbers from it, so
numbers are never reused after rows are deleted. It starts at the current last event. `ledger_checkpoints`
is the database's copy of the signed checkpoints (the copy that counts lives in the checkpoint directory).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = '0004_ledger_checkpoints'
down_revision = '0002_run_epoch'
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table('ledger_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('ledger_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('key_fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('signature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ledger_checkpoints', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_checkpoints_seq', ['seq'], unique=False)

    last = op.get_bind().execute(sa.text("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")).first()
    op.get_bind().execute(sa.text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, :seq, :hash)"),
                          {"seq": last[0] if last else 0, "hash": last[1] if last else GENESIS})


def downgrade() -> None:
    with op.batch_alter_table('ledger_checkpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_checkpoints_seq')
    op.drop_table('ledger_checkpoints')
    op.drop_table('ledger_head')
