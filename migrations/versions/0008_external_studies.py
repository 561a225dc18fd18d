"""Studies of the user's own code (``model: external``), and trial leases

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

``hps_studies.model``: the spec's model, so workers can skip studies of the user's own
code with an indexed condition (trials of those are claimed over the REST trial API);
filled from each stored spec. ``hps_studies.metric_names``: the metrics an external
study's trials have reported, in the order first seen (its leaderboard's columns).
``hps_trials.lease``: the token a remote client holds on a claimed attempt (calls with any
other are refused); ``client``: who claimed it, as the client says; ``log``: the tail of
the output a failed remote trial sent.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("model", sa.String(16), nullable=False, server_default="mlp"))
        batch.add_column(sa.Column("metric_names", sa.JSON(), nullable=True))
    with op.batch_alter_table("hps_trials") as batch:
        batch.add_column(sa.Column("lease", sa.String(64), nullable=True))
        batch.add_column(sa.Column("client", sa.String(200), nullable=True))
        batch.add_column(sa.Column("log", sa.Text(), nullable=True))
    studies = sa.table(
        "hps_studies", sa.column("id", sa.Integer), sa.column("spec"), sa.column("model")
    )
    conn = op.get_bind()
    for study_id, spec in conn.execute(sa.select(studies.c.id, studies.c.spec)).all():
        if isinstance(spec, str):
            spec = json.loads(spec)
        model = (spec or {}).get("model") or "mlp"
        if model != "mlp":
            conn.execute(studies.update().where(studies.c.id == study_id).values(model=model))


def downgrade() -> None:
    with op.batch_alter_table("hps_trials") as batch:
        batch.drop_column("log")
        batch.drop_column("client")
        batch.drop_column("lease")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of hps_studies
    # would drop the old table, and its trials with it (ON DELETE CASCADE).
    op.drop_column("hps_studies", "metric_names")
    op.drop_column("hps_studies", "model")
