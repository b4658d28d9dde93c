"""intake: DIMSE peers and site policies

Revision ID: 0002
Revises: 0003

Numbered 0002 as reserved for intake, but 0003 (baskets) landed first on top of
0001; revising it keeps one linear history (0001 -> 0003 -> 0002).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_dimse_peer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("collection", sa.String(length=128), nullable=False),
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_dimse_peer")),
        sa.UniqueConstraint("ae_title", name=op.f("uq_intake_dimse_peer_ae_title")),
    )
    op.create_table(
        "intake_site_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection", sa.String(length=128), nullable=False),
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("require_deid_provenance", sa.Boolean(), nullable=False),
        sa.Column("kit_id", sa.String(length=128), nullable=True),
        sa.Column("recipe_hash", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_site_policy")),
        sa.UniqueConstraint("collection", "site", name=op.f("uq_intake_site_policy_collection")),
    )


def downgrade() -> None:
    op.drop_table("intake_site_policy")
    op.drop_table("intake_dimse_peer")
