"""public search index and shared baskets

One covering index for faceted search and result placement
(``series(collection_id, modality, body_part_examined, manufacturer,
series_description)``), and the name a basket is shared under.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 07:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(
            "ix_series_facets",
            [
                "collection_id",
                "modality",
                "body_part_examined",
                "manufacturer",
                "series_description",
            ],
            unique=False,
        )
    with op.batch_alter_table("basket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shared_name", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_basket_shared_name"), ["shared_name"])


def downgrade() -> None:
    with op.batch_alter_table("basket", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_basket_shared_name"), type_="unique")
        batch_op.drop_column("shared_name")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("ix_series_facets")
