"""Which studies a worker serves: ``hps_workers.serves_study``

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

A worker started with ``--study N`` serves study N only; NULL (every worker registered
before this revision too) serves any study of a built-in model. Reads use it to tell a
study that no live worker can serve ("waiting for a worker") from one that is merely
queued behind busy workers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("hps_workers", sa.Column("serves_study", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), as 0008 does.
    op.drop_column("hps_workers", "serves_study")
