"""Public-side working state: data baskets (a user's, or a guest browser session's).

A basket holds series by row id, not by UID, so adding a whole search result is
one ``INSERT ... SELECT`` and removing a series from the catalogue removes it
from every basket (cascade).  A basket belongs to exactly one of a user (kept
across logins) or a guest session key (a random value inside the signed session
cookie).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dicomhub.core.db.base import Base, utcnow


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
