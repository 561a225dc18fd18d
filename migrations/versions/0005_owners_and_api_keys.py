"""Owners and public flags on hps_studies; hps_api_keys and hps_web_sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Studies submitted before this revision have no owner: with auth on only admins see them
(an admin can hand one over by setting ``owner`` in the database).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hps_studies") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_hps_studies_owner", "hps_studies", ["owner", "id"])
    op.create_table(
        "hps_api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_hps_api_keys"),
        sa.UniqueConstraint("name", name="uq_hps_api_keys_name"),
        sa.UniqueConstraint("token_hash", name="uq_hps_api_keys_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hps_api_keys_user", "hps_api_keys", ["user"])
    op.create_table(
        "hps_web_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["hps_api_keys.id"],
            name="fk_hps_web_sessions_key_id_hps_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_hps_web_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_hps_web_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hps_web_sessions_key_id", "hps_web_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_hps_web_sessions_key_id", "hps_web_sessions")
    op.drop_table("hps_web_sessions")
    op.drop_index("ix_hps_api_keys_user", "hps_api_keys")
    op.drop_table("hps_api_keys")
    op.drop_index("ix_hps_studies_owner", "hps_studies")
    with op.batch_alter_table("hps_studies") as batch:
        batch.drop_column("public")
        batch.drop_column("owner")
