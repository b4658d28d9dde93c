"""Intake-only tables: which DIMSE peers may send, and each site's acceptance policy."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dicomhub.core.db.base import Base, utcnow


class DimsePeer(Base):
    """A calling AE title allowed to C-STORE, and the collection/site its instances go to."""

    __tablename__ = "intake_dimse_peer"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    # Names, as in token scopes, so a peer can be registered before its first instance.
    collection: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SitePolicy(Base):
    """What intake demands of one site: the de-identification kit it was issued."""

    __tablename__ = "intake_site_policy"
    __table_args__ = (UniqueConstraint("collection", "site"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(128))
    require_deid_provenance: Mapped[bool] = mapped_column(default=True)
    kit_id: Mapped[str | None] = mapped_column(String(128))
    recipe_hash: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
