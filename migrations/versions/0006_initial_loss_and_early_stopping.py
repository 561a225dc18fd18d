"""Initial-loss check and early stopping on hps_trials

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

``initial_loss``: the training loss measured before any update; ``expected_initial_loss``:
what an untrained network should score (ln C, or 1 on standardised regression targets).
``stopped_early_at``: the epoch early stopping ended the trial at (NULL: it ran its
budget, or early stopping was off); ``best_epoch``: the epoch whose weights and metrics
the trial kept. Trials recorded before this revision have NULL in all four.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("initial_loss", sa.Float(), nullable=True))
        batch.add_column(sa.Column("expected_initial_loss", sa.Float(), nullable=True))
        batch.add_column(sa.Column("stopped_early_at", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("best_epoch")
        batch.drop_column("stopped_early_at")
        batch.drop_column("expected_initial_loss")
        batch.drop_column("initial_loss")
