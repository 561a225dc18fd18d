"""One name per dataset uploaded with auth off

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

With ``HPS_AUTH=off`` a dataset's owner is NULL, and NULLs never collide in the unique
index on (owner, name): two concurrent uploads of one name could both be stored. A partial
unique index on ``name`` where ``owner IS NULL`` (SQLite and PostgreSQL both have them)
closes that; the loser's retry then finds the winner and answers 409, as a sequential
duplicate does. Duplicates stored before this revision keep their oldest row's name; each
later one becomes ``NAME-ID``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEX = "ix_hps_datasets_name_unowned"
UNOWNED = sa.text("owner IS NULL")


def upgrade() -> None:
    datasets = sa.table(
        "hps_datasets", sa.column("id", sa.Integer), sa.column("name"), sa.column("owner")
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(datasets.c.id, datasets.c.name)
        .where(datasets.c.owner.is_(None))
        .order_by(datasets.c.id)
    ).all()
    seen: set[str] = set()
    for dataset_id, name in rows:
        if name in seen:
            conn.execute(
                datasets.update()
                .where(datasets.c.id == dataset_id)
                .values(name=f"{name[:180]}-{dataset_id}")
            )
        seen.add(name)
    op.create_index(
        INDEX,
        "hps_datasets",
        ["name"],
        unique=True,
        sqlite_where=UNOWNED,
        postgresql_where=UNOWNED,
    )


def downgrade() -> None:
    op.drop_index(INDEX, "hps_datasets")
