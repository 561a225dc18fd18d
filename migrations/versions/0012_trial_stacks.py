"""Trials trained together as one stacked model

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

``hps_trials.stack``: for an attempt a worker trained in a stack with others (``worker
--batch-trials``), the trial number of the stack's first trial; NULL for one trained alone
(every trial stored before). ``hps_workers.stack``: the trial numbers a worker trains
together now (NULL: one trial, or none).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("stack", sa.Integer(), nullable=True))
    with op.batch_alter_table("hps_workers") as batch:
        batch.add_column(sa.Column("stack", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hps_workers") as batch:
        batch.drop_column("stack")
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("stack")
