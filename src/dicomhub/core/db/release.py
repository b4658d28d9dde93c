"""Releases: what promotion published, when, by whom, under which recipe, and its manifest.

A release is staged item by item (:class:`ReleaseItem`, one per instance, committed
in batches so a killed promotion resumes where it stopped) and published in one
database transaction that writes every catalogue row at once.  The catalogue
therefore never shows part of a release: until that transaction commits, staged
items live only in ``release_item``, which no public query reads.

Both tables live in the public database (the intake database has them empty).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomhub.core.db.base import Base, JSONType, utcnow
from dicomhub.core.db.catalog import UID


class ReleaseState(enum.StrEnum):
    """Where a release is: being staged, published, or stopped by a failed check."""

    STAGING = "staging"
    PUBLISHED = "published"
    FAILED = "failed"


class Release(Base):
    """One promotion of a collection (or of some of its series) to the public side."""

    __tablename__ = "release"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection: Mapped[str] = mapped_column(String(128), index=True)
    state: Mapped[str] = mapped_column(String(16), default=ReleaseState.STAGING.value, index=True)
    #: sha256 of the recipe hash and every (SOPInstanceUID, intake sha256) promoted: the
    #: same input gives the same digest, so a re-run finds (and resumes) its release.
    plan_digest: Mapped[str] = mapped_column(String(64), index=True)
    recipe_hash: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[dict[str, Any]] = mapped_column(default=dict)
    series_selection: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None]
    patients: Mapped[int] = mapped_column(default=0)
    studies: Mapped[int] = mapped_column(default=0)
    series: Mapped[int] = mapped_column(default=0)
    instances: Mapped[int] = mapped_column(default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest_key: Mapped[str] = mapped_column(String(512), default="")
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str | None] = mapped_column(Text)


class ReleaseItem(Base):
    """One instance of a release: its intake hash and what was written to the public store.

    ``header`` (the DICOM JSON of the written bytes) is kept only until publication,
    when it has been copied into the catalogue.
    """

    __tablename__ = "release_item"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("release.id", ondelete="CASCADE"), primary_key=True
    )
    sop_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    patient_id: Mapped[str] = mapped_column(String(64))
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    source_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(512))
    header: Mapped[dict[str, Any] | None]
