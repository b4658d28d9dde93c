"""Collection listings and collection pages: description, licence, citation and counts.

Counts come from grouped SQL over the series table (which carries its
collection id, instance count and size), so a listing costs a few queries
whatever the archive's size.  Limited collections appear only for callers
whose :class:`~dicomhub.publish.access.Visibility` includes them.

Releases (what each promotion published, with its manifest of every instance
and sha256) are listed per collection under the same rule: the release of a
collection the caller may not see does not exist for them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Release, ReleaseState, Series, Study
from dicomhub.errors import NotFound
from dicomhub.publish.access import Visibility
from dicomhub.publish.query import text_key

_ZERO = {"patients": 0, "studies": 0, "series": 0, "instances": 0, "size": 0}


def _counts_by_collection(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    query = (
        select(
            Series.collection_id,
            func.count(distinct(Study.patient_id)),
            func.count(distinct(Series.study_id)),
            func.count(Series.id),
            func.coalesce(func.sum(Series.instance_count), 0),
            func.coalesce(func.sum(Series.total_size), 0),
        )
        .join(Study, Study.id == Series.study_id)
        .where(Series.collection_id.in_(ids))
        .group_by(Series.collection_id)
    )
    out: dict[int, dict[str, int]] = {}
    for ident, patients, studies, series, instances, size in session.execute(query):
        out[ident] = {
            "patients": int(patients),
            "studies": int(studies),
            "series": int(series),
            "instances": int(instances),
            "size": int(size),
        }
    return out


def collection_summary(collection: Collection, counts: dict[str, int]) -> dict[str, Any]:
    """A collection as the listing shows it."""
    return {
        "name": collection.name,
        "access": collection.access.value,
        "description": collection.description,
        "license_name": collection.license_name,
        "license_url": collection.license_url,
        "doi": collection.doi,
        **counts,
    }


def list_collections(session: Session, visibility: Visibility) -> list[dict[str, Any]]:
    """Every collection the caller may see, by name, with its counts."""
    query = select(Collection).where(visibility.collection_clause())
    collections = list(session.scalars(query.order_by(text_key(session, Collection.name))))
    counts = _counts_by_collection(session, [c.id for c in collections])
    return [collection_summary(c, counts.get(c.id, dict(_ZERO))) for c in collections]


def _breakdown(session: Session, collection_id: int, column: Any) -> list[dict[str, Any]]:
    query = (
        select(
            column,
            func.count(Series.id),
            func.count(distinct(Study.patient_id)),
            func.coalesce(func.sum(Series.instance_count), 0),
        )
        .join(Study, Study.id == Series.study_id)
        .where(Series.collection_id == collection_id)
        .group_by(column)
    )
    rows = [
        {"value": value, "series": int(series), "patients": int(patients), "instances": int(n)}
        for value, series, patients, n in session.execute(query)
    ]
    rows.sort(key=lambda row: (-row["series"], str(row["value"])))
    return rows


def collection_detail(session: Session, visibility: Visibility, name: str) -> dict[str, Any]:
    """A collection page's content; NotFound if absent or not visible to the caller."""
    collection = visibility.require_collection(session, name)
    counts = _counts_by_collection(session, [collection.id]).get(collection.id, dict(_ZERO))
    detail = collection_summary(collection, counts)
    detail |= {
        "citation": collection.citation,
        "updated_at": collection.updated_at.isoformat(),
        "by_modality": _breakdown(session, collection.id, Series.modality),
        "by_body_part": _breakdown(session, collection.id, Series.body_part_examined),
    }
    return detail


def _visible_releases(visibility: Visibility) -> Select[Any]:
    """Published releases of the collections the caller may see (joined by name)."""
    return (
        select(Release)
        .join(Collection, Collection.name == Release.collection)
        .where(Release.state == ReleaseState.PUBLISHED.value, visibility.collection_clause())
    )


def release_summary(release: Release) -> dict[str, Any]:
    """A release as the public API lists it (the manifest is fetched by its number)."""
    return {
        "number": release.id,
        "collection": release.collection,
        "published_at": release.published_at.isoformat() if release.published_at else None,
        "recipe_hash": release.recipe_hash,
        "patients": release.patients,
        "studies": release.studies,
        "series": release.series,
        "instances": release.instances,
        "size": release.total_size,
        "manifest": f"/api/releases/{release.id}/manifest.json",
        "manifest_sha256": release.manifest_sha256,
    }


def list_releases(
    session: Session, visibility: Visibility, collection: str | None = None
) -> list[dict[str, Any]]:
    """Published releases the caller may see, oldest first; one collection's if named.

    Raises
    ------
    NotFound
        ``collection`` is named but does not exist or is not visible.
    """
    query = _visible_releases(visibility)
    if collection is not None:
        visibility.require_collection(session, collection)
        query = query.where(Release.collection == collection)
    return [release_summary(r) for r in session.scalars(query.order_by(Release.id))]


def visible_release(session: Session, visibility: Visibility, number: int) -> Release:
    """Published release ``number`` if the caller may see its collection, else NotFound."""
    found = session.scalar(_visible_releases(visibility).where(Release.id == number))
    if not isinstance(found, Release) or not found.manifest_key:
        raise NotFound(f"no release {number}")
    return found
