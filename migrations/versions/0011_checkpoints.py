"""Checkpoints of trials stopped for a retry, and the epoch an attempt resumed from

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

``hps_checkpoints``: one row per (study, slot): the training state a built-in trial saved
when a SIGTERM stopped it, which the slot's retry resumes from; deleted with its study.
``hps_trials.resumed_from``: the checkpoint's epoch, for an attempt that resumed (NULL for
every trial stored before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hps_checkpoints",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hps_studies.id"],
            name="fk_hps_checkpoints_study_id_hps_studies",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("study_id", "slot", name="pk_hps_checkpoints"),
    )
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("resumed_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("resumed_from")
    op.drop_table("hps_checkpoints")
