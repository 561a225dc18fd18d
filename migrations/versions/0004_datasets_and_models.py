"""Uploaded datasets, kept model weights and the winner's test-set evaluation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

- hps_blobs: uploaded files, content-addressed by sha256, so a worker on any machine reads
  a dataset from the database (and caches it by hash); no shared filesystem.
- hps_datasets: an uploaded table, its target and task, and a description of its columns.
- hps_models: the weights and JSON config of the best few complete trials of a study.
- hps_studies: ``task`` (classification | regression; existing rows get their built-in
  dataset's task), ``dataset_id`` (an uploaded dataset) and ``test_*``: the winner's one
  evaluation on the held-out test split, claimed by one worker when the study has ended.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Built-in datasets that were regression when this revision was written.
_REGRESSION = ("diabetes",)


def upgrade() -> None:
    op.create_table(
        "hps_blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_hps_blobs"),
    )
    op.create_table(
        "hps_datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("task_inferred", sa.Boolean(), nullable=False),
        sa.Column("impute", sa.Boolean(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_columns", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["hps_blobs.sha256"], name="fk_hps_datasets_sha256_hps_blobs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hps_datasets"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_hps_datasets_content",
        "hps_datasets",
        ["owner", "sha256", "target", "task", "impute"],
        unique=True,
    )
    op.create_index("ix_hps_datasets_name", "hps_datasets", ["owner", "name"], unique=True)
    op.create_table(
        "hps_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["hps_studies.id"],
            name="fk_hps_models_study_id_hps_studies",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["hps_trials.id"],
            name="fk_hps_models_trial_id_hps_trials",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hps_models"),
        sa.UniqueConstraint("trial_id", name="uq_hps_models_trial_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hps_models_study", "hps_models", ["study_id", "value"])
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(
            sa.Column("task", sa.String(16), nullable=False, server_default="classification")
        )
        batch.add_column(sa.Column("dataset_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("test_claimed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("test_trial", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_metrics", sa.JSON(), nullable=True))
    op.create_index("ix_hps_studies_dataset_id", "hps_studies", ["dataset_id"])
    studies = sa.table("hps_studies", sa.column("dataset"), sa.column("task"))
    op.get_bind().execute(
        studies.update().where(studies.c.dataset.in_(_REGRESSION)).values(task="regression")
    )


def downgrade() -> None:
    op.drop_index("ix_hps_studies_dataset_id", table_name="hps_studies")
    with op.batch_alter_table("hps_studies") as batch:
        for column in ("test_metrics", "test_trial", "test_claimed_at", "test_state"):
            batch.drop_column(column)
        batch.drop_column("dataset_id")
        batch.drop_column("task")
    op.drop_index("ix_hps_models_study", table_name="hps_models")
    op.drop_table("hps_models")
    op.drop_index("ix_hps_datasets_name", table_name="hps_datasets")
    op.drop_index("ix_hps_datasets_content", table_name="hps_datasets")
    op.drop_table("hps_datasets")
    op.drop_table("hps_blobs")
