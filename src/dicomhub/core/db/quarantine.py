"""Instances the intake refused to accept, with their bytes kept for a manager."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomhub.core.db.base import Base, utcnow


class QuarantineState(enum.StrEnum):
    """Where a quarantined item is in its life."""

    HELD = "held"
    RELEASED = "released"
    DELETED = "deleted"


class QuarantineItem(Base):
    """One refused object: a stable reason code, a human detail and where its bytes are."""

    __tablename__ = "quarantine_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    reason_code: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)
    blob_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    collection: Mapped[str] = mapped_column(String(128), default="", index=True)
    site: Mapped[str] = mapped_column(String(128), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    origin: Mapped[str] = mapped_column(String(256), default="")
    state: Mapped[QuarantineState] = mapped_column(
        Enum(
            QuarantineState,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=QuarantineState.HELD,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
