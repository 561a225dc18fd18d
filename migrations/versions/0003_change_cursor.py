"""Change cursor: hps_studies.change_seq and hps_trials.seq

Every trial's end takes the next number of its study's ``change_seq`` in the transaction
that records it (under the study row's lock), so "trials finished after cursor N" is an
exact, clock-free question: live pages ask only for what changed since they last looked.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("change_seq", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))
    op.create_index("ix_hps_trials_seq", "hps_trials", ["study_id", "seq"])
    # Trials finished before this revision get sequence numbers in finishing order.
    studies = sa.table("hps_studies", sa.column("id"), sa.column("change_seq"))
    trials = sa.table(
        "hps_trials",
        sa.column("id"),
        sa.column("study_id"),
        sa.column("seq"),
        sa.column("finished_at"),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(trials.c.id, trials.c.study_id)
        .where(trials.c.finished_at.is_not(None))
        .order_by(trials.c.study_id, trials.c.finished_at, trials.c.id)
    ).all()
    last: dict[int, int] = {}
    for trial_id, study_id in rows:
        last[study_id] = last.get(study_id, 0) + 1
        conn.execute(trials.update().where(trials.c.id == trial_id).values(seq=last[study_id]))
    for study_id, seq in last.items():
        conn.execute(studies.update().where(studies.c.id == study_id).values(change_seq=seq))


def downgrade() -> None:
    op.drop_index("ix_hps_trials_seq", "hps_trials")
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_column("change_seq")
