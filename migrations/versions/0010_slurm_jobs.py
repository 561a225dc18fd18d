"""The Slurm job arrays submitted for each study

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

``hps_slurm_jobs``: one row per ``hpsearch slurm submit`` (the study, Slurm's job id, the
array's size, when and by whom), read by ``hpsearch slurm status``/``cancel`` and the
study page. Deleted with its study.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hps_slurm_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("array_size", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hps_studies.id"],
            name="fk_hps_slurm_jobs_study_id_hps_studies",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hps_slurm_jobs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hps_slurm_jobs_study_id", "hps_slurm_jobs", ["study_id"])


def downgrade() -> None:
    op.drop_index("ix_hps_slurm_jobs_study_id", table_name="hps_slurm_jobs")
    op.drop_table("hps_slurm_jobs")
