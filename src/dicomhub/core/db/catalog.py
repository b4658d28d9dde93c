"""The DICOM information model as stored: Collection → Patient → Study → Series → Instance.

Search columns are copied out of the header into indexed columns when an
instance is stored, so search, faceting and header analysis never re-read a
blob.  The full header is kept as DICOM JSON (PS3.18 F.2) without bulk data.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomhub.core.db.base import Base, utcnow

UID = String(64)


class Access(enum.StrEnum):
    """Who may see a collection."""

    PUBLIC = "public"
    LIMITED = "limited"


class Collection(Base):
    """A curated set of studies published together under one licence."""

    __tablename__ = "collection"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    access: Mapped[Access] = mapped_column(
        Enum(Access, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=Access.PUBLIC,
    )
    license_name: Mapped[str] = mapped_column(String(256), default="")
    license_url: Mapped[str] = mapped_column(String(512), default="")
    citation: Mapped[str] = mapped_column(Text, default="")
    doi: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    sites: Mapped[list[Site]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class Site(Base):
    """A submitting site of one collection."""

    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("collection_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="sites")


class Patient(Base):
    """A patient as identified inside one collection (the archive's ID once de-identified)."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("collection_id", "patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    patient_id: Mapped[str] = mapped_column(String(64))
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    patient_age: Mapped[str] = mapped_column(String(8), default="")
    ethnic_group: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    studies: Mapped[list[Study]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True
    )


class Study(Base):
    """One DICOM study."""

    __tablename__ = "study"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_date: Mapped[date | None] = mapped_column(index=True)
    study_time: Mapped[str] = mapped_column(String(32), default="")
    study_description: Mapped[str] = mapped_column(String(256), default="")
    study_id: Mapped[str] = mapped_column(String(32), default="")
    accession_number: Mapped[str] = mapped_column(String(64), default="")
    patient_age: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )


class Series(Base):
    """One DICOM series with the columns search and faceting need."""

    __tablename__ = "series"
    __table_args__ = (Index("ix_series_modality_body_part", "modality", "body_part_examined"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), index=True
    )
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    series_number: Mapped[int | None]
    series_date: Mapped[date | None] = mapped_column(index=True)
    series_description: Mapped[str] = mapped_column(String(256), default="")
    protocol_name: Mapped[str] = mapped_column(String(256), default="")
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    body_part_examined: Mapped[str] = mapped_column(String(64), default="", index=True)
    manufacturer: Mapped[str] = mapped_column(String(128), default="", index=True)
    manufacturer_model_name: Mapped[str] = mapped_column(String(128), default="", index=True)
    software_versions: Mapped[str] = mapped_column(String(256), default="")
    sop_class_uid: Mapped[str] = mapped_column(UID, default="", index=True)
    frame_of_reference_uid: Mapped[str] = mapped_column(UID, default="")
    instance_count: Mapped[int] = mapped_column(default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series", cascade="all, delete-orphan", passive_deletes=True
    )


class Instance(Base):
    """One stored SOP instance: where its bytes are, their hashes, and its full header."""

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    instance_number: Mapped[int | None]
    content_date: Mapped[date | None]
    acquisition_date: Mapped[date | None]
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    blob_key: Mapped[str] = mapped_column(String(512))
    header: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")
