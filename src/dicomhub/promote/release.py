"""Release records: open (or find again) a release, stage its items, write its manifest.

A re-run of the same promotion (same plan digest) resumes the release still
``staging`` or, if that release was published, does nothing.  Items are added
with "insert, ignore duplicates", so two runs racing on one release cannot
duplicate a row.  The manifest (every public instance and its sha256) is a JSON
blob in the public store, so a downloader can check a copy without trusting
the transport.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import Instance, Release, ReleaseItem, ReleaseState, session_scope, utcnow
from dicomhub.core.deid import Recipe
from dicomhub.core.store.base import BlobStore, check_key
from dicomhub.errors import ArchiveError
from dicomhub.promote.plan import Counts, Plan

LOGGER = logging.getLogger(__name__)
MANIFEST_FORMAT = "dicomhub-release-manifest/1"


class Opened(enum.StrEnum):
    """How :func:`open_release` found the release."""

    NEW = "new"
    RESUMED = "resumed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class StagedItem:
    """What resuming needs to know of an item already staged."""

    source_sha256: str


def open_release(
    session: Session, plan: Plan, recipe: Recipe, *, actor: str, job_id: str | None
) -> tuple[int, Opened]:
    """The release for ``plan``: a published twin, a staging one to resume, or a new one."""
    recipe_hash = recipe.recipe_hash()
    digest = plan.digest(recipe_hash)
    same = (
        select(Release)
        .where(Release.collection == plan.collection.name, Release.plan_digest == digest)
        .order_by(Release.id.desc())
    )
    published = session.scalar(same.where(Release.state == ReleaseState.PUBLISHED.value))
    if published is not None:
        return published.id, Opened.UNCHANGED
    staging = session.scalar(same.where(Release.state == ReleaseState.STAGING.value))
    if staging is not None:
        staging.job_id = job_id
        staging.error = None
        return staging.id, Opened.RESUMED
    release = Release(
        collection=plan.collection.name,
        state=ReleaseState.STAGING.value,
        plan_digest=digest,
        recipe_hash=recipe_hash,
        recipe=json.loads(recipe.canonical_json()),
        series_selection=list(plan.series_selection),
        created_by=actor,
        job_id=job_id,
    )
    session.add(release)
    session.flush()
    return release.id, Opened.NEW


def superseded(session: Session, release_id: int) -> list[int]:
    """Other staging releases of the same collection and selection as ``release_id``.

    They were started on what intake held before (their plan digest differs) and can
    never be resumed, so the new release replaces them.
    """
    release = session.get(Release, release_id)
    assert release is not None
    query = select(Release).where(
        Release.collection == release.collection,
        Release.state == ReleaseState.STAGING.value,
        Release.id != release_id,
    )
    return [
        other.id
        for other in session.scalars(query)
        if sorted(other.series_selection) == sorted(release.series_selection)
    ]


def staged(session: Session, release_id: int) -> dict[str, StagedItem]:
    """The items already staged for a release, by SOPInstanceUID."""
    query = select(ReleaseItem.sop_instance_uid, ReleaseItem.source_sha256).where(
        ReleaseItem.release_id == release_id
    )
    return {sop: StagedItem(sha) for sop, sha in session.execute(query)}


def add_items(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert staged items, ignoring any already there (a racing or resumed run)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = pg_insert(ReleaseItem) if dialect == "postgresql" else sqlite_insert(ReleaseItem)
    session.execute(statement.on_conflict_do_nothing(), list(rows))


def load_items(session: Session, release_id: int) -> list[ReleaseItem]:
    """Every staged item of a release, by SOPInstanceUID."""
    query = (
        select(ReleaseItem)
        .where(ReleaseItem.release_id == release_id)
        .order_by(ReleaseItem.sop_instance_uid)
    )
    return list(session.scalars(query))


def manifest_key(release_id: int) -> str:
    """Where a release's manifest lives in the public store."""
    return check_key(f"releases/{release_id:08d}/manifest.json")


def manifest_bytes(release: Release, items: Iterable[ReleaseItem], counts: Counts) -> bytes:
    """The release manifest: the release, its counts, and every instance with its sha256.

    Deterministic for a given release (no timestamps of its own), so a resumed
    promotion writes the same bytes again.
    """
    body = {
        "format": MANIFEST_FORMAT,
        "release": release.id,
        "collection": release.collection,
        "recipe_hash": release.recipe_hash,
        "plan_digest": release.plan_digest,
        "counts": counts.to_dict(),
        "instances": [
            {
                "patient_id": item.patient_id,
                "study_instance_uid": item.study_instance_uid,
                "series_instance_uid": item.series_instance_uid,
                "sop_instance_uid": item.sop_instance_uid,
                "size": item.size,
                "sha256": item.sha256,
                "md5": item.md5,
            }
            for item in items
        ],
    }
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def read_manifest(store: BlobStore, key: str) -> dict[str, Any]:
    """A release manifest read back from the public store."""
    data: dict[str, Any] = json.loads(store.get(key))
    return data


def record_error(factory: sessionmaker[Session], release_id: int, message: str) -> None:
    """Note why a staging release stopped (it stays resumable)."""
    with session_scope(factory) as session:
        session.execute(
            update(Release).where(Release.id == release_id).values(error=message[:4000])
        )


def fail_release(
    factory: sessionmaker[Session], store: BlobStore, release_id: int, message: str
) -> None:
    """Mark a release failed and withdraw what it staged, so nothing of it is left public.

    Blobs the catalogue references (an unchanged instance of an earlier release)
    are kept; every other blob this release wrote, and its manifest, is deleted.
    """
    with session_scope(factory) as session:
        keys = set(
            session.scalars(
                select(ReleaseItem.blob_key).where(ReleaseItem.release_id == release_id)
            )
        )
        for chunk in _chunks(sorted(keys), 500):
            referenced = set(
                session.scalars(select(Instance.blob_key).where(Instance.blob_key.in_(chunk)))
            )
            keys -= referenced
        session.execute(delete(ReleaseItem).where(ReleaseItem.release_id == release_id))
        session.execute(
            update(Release)
            .where(Release.id == release_id, Release.state != ReleaseState.PUBLISHED.value)
            .values(state=ReleaseState.FAILED.value, error=message[:4000], updated_at=utcnow())
        )
    for key in (*sorted(keys), manifest_key(release_id)):
        with contextlib.suppress(ArchiveError, OSError):
            store.delete(key)
    LOGGER.warning(
        "release %d failed, %d staged blobs withdrawn: %s", release_id, len(keys), message
    )


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
