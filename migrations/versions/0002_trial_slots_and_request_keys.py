"""Budget slots on hps_trials (slot, losses, retry_pending); request keys on hps_studies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A trial row is now one attempt at budget slot k of [0, n_trials): a lost or interrupted
attempt leaves its slot ``retry_pending`` for the next claim, which repeats the slot's
configuration, and ``losses`` caps how often a slot may lose its worker. ``request_key``
lets a retried submission return the study it created instead of a duplicate.

Rows written before this revision keep ``slot`` NULL. A study still running across the
upgrade goes on with fresh slots from its ``claimed`` count; for a grid study that had
retries queued by the old workers, a point may then run twice (within the budget), and
the WAITING trials the old workers enqueued stay in Optuna (``hpsearch db check`` lists
them). Studies submitted after the upgrade are exact.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("slot", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("losses", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("retry_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_hps_trials_slot", "hps_trials", ["study_id", "slot"])
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("request_key", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_hps_studies_request_key", ["request_key"])


def downgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_constraint("uq_hps_studies_request_key", type_="unique")
        batch.drop_column("request_key")
    op.drop_index("ix_hps_trials_slot", table_name="hps_trials")
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("retry_pending")
        batch.drop_column("losses")
        batch.drop_column("slot")
