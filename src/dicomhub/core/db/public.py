"""Public-side working state: data baskets, and the indexes public search relies on.

A basket holds series by row id, not by UID, so adding a whole search result is
one ``INSERT ... SELECT`` and removing a series from the catalogue removes it
from every basket (cascade).  A basket belongs to exactly one of a user (kept
across logins) or a guest session key (a random value inside the signed session
cookie).  A user may share their basket under a unique name (NBIA's "shared
cart"), which anyone may then read within their own access.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dicomhub.core.db.base import Base, utcnow
from dicomhub.core.db.catalog import Series


class Basket(Base):
    """A data basket, owned by a user or by one guest browser session."""

    __tablename__ = "basket"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (session_key IS NULL)", name="one_owner"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), unique=True
    )
    session_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The name the owner shared this basket under (NBIA getContentsByName), if any.
    shared_name: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class BasketItem(Base):
    """One series in one basket (each series at most once)."""

    __tablename__ = "basket_item"

    basket_id: Mapped[int] = mapped_column(
        ForeignKey("basket.id", ondelete="CASCADE"), primary_key=True
    )
    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), primary_key=True, index=True
    )


#: Public search groups the series of the caller's collections by facet values
#: (and filters on the description) in one pass; this index covers that pass,
#: so it never reads the series rows themselves, and its leading column serves
#: the per-collection counts that place a result page.
SERIES_FACETS_INDEX = Index(
    "ix_series_facets",
    Series.collection_id,
    Series.modality,
    Series.body_part_examined,
    Series.manufacturer,
    Series.series_description,
)
