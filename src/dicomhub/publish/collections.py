"""Collection listings and collection pages: description, licence, citation and counts.

Counts come from grouped SQL over the series table (which carries its
collection id, instance count and size), so a listing costs a few queries
whatever the archive's size.  Limited collections appear only for callers
whose :class:`~dicomhub.publish.access.Visibility` includes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Series, Study
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
