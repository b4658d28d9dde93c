"""public basket: data baskets of users and guest sessions

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25 04:16:59.201678
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "basket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("session_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (session_key IS NULL)", name=op.f("ck_basket_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_basket_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_basket")),
        sa.UniqueConstraint("session_key", name=op.f("uq_basket_session_key")),
        sa.UniqueConstraint("user_id", name=op.f("uq_basket_user_id")),
    )
    with op.batch_alter_table("basket", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_basket_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "basket_item",
        sa.Column("basket_id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["basket_id"],
            ["basket.id"],
            name=op.f("fk_basket_item_basket_id_basket"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_basket_item_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("basket_id", "series_id", name=op.f("pk_basket_item")),
    )
    with op.batch_alter_table("basket_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_basket_item_series_id"), ["series_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("basket_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_basket_item_series_id"))
    op.drop_table("basket_item")
    with op.batch_alter_table("basket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_basket_updated_at"))
    op.drop_table("basket")
