"""Submitter verification: what intake holds for one collection and site.

A site's submitter pipeline compares the sha256 intake computed on arrival with
the sha256 of the bytes it sent, so anything lost, cut short or altered on the
way is found and sent again.  The instance list is read in keyset pages (by row
id), so a collection of millions streams in constant memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Instance, Patient, Series, Site, Study

LOGGER = logging.getLogger(__name__)

#: Rows fetched per database round trip when streaming the whole inventory.
PAGE_SIZE = 5000
MAX_PAGE_SIZE = 50000


@dataclass(frozen=True)
class Scope:
    """One collection and site, by name and (if they exist at intake) by id."""

    collection: str
    site: str
    collection_id: int | None
    site_id: int | None

    @property
    def exists(self) -> bool:
        return self.collection_id is not None and self.site_id is not None


@dataclass(frozen=True)
class InventoryItem:
    """One stored instance as the submitter sees it."""

    id: int
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, str | int]:
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "study_instance_uid": self.study_instance_uid,
            "sha256": self.sha256,
            "size": self.size,
        }


def resolve_scope(session: Session, collection: str, site: str) -> Scope:
    """The ids of ``collection``/``site`` at intake (None when nothing arrived there yet)."""
    row = session.execute(
        select(Collection.id, Site.id)
        .join(Site, Site.collection_id == Collection.id)
        .where(Collection.name == collection, Site.name == site)
    ).first()
    if row is None:
        return Scope(collection, site, None, None)
    return Scope(collection, site, int(row[0]), int(row[1]))


_Q = TypeVar("_Q", bound="Select[*tuple[Any, ...]]")


def _scoped(query: _Q, scope: Scope, series_uid: str | None) -> _Q:
    """``query`` over Instance joined up to its patient, narrowed to one collection and site.

    An instance's site is its patient's: the site that first sent that patient.
    """
    query = (
        query.select_from(Instance)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Series.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
        .where(Series.collection_id == scope.collection_id, Patient.site_id == scope.site_id)
    )
    if series_uid:
        query = query.where(Series.series_instance_uid == series_uid)
    return query


def counts(session: Session, scope: Scope, series_uid: str | None = None) -> dict[str, int]:
    """Patients, studies, series and instances stored for ``scope``."""
    if not scope.exists:
        return {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    query = select(
        func.count(func.distinct(Patient.id)),
        func.count(func.distinct(Study.id)),
        func.count(func.distinct(Series.id)),
        func.count(Instance.id),
    )
    patients, studies, series, instances = session.execute(_scoped(query, scope, series_uid)).one()
    return {
        "patients": int(patients),
        "studies": int(studies),
        "series": int(series),
        "instances": int(instances),
    }


def page(
    session: Session,
    scope: Scope,
    *,
    after: int = 0,
    limit: int = PAGE_SIZE,
    series_uid: str | None = None,
) -> list[InventoryItem]:
    """Up to ``limit`` instances with a row id above ``after``, in id order."""
    if not scope.exists:
        return []
    query = select(
        Instance.id,
        Instance.sop_instance_uid,
        Series.series_instance_uid,
        Study.study_instance_uid,
        Instance.sha256,
        Instance.size,
    )
    query = _scoped(query, scope, series_uid).where(Instance.id > after)
    rows = session.execute(query.order_by(Instance.id).limit(limit))
    return [InventoryItem(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


def iter_inventory(
    session: Session, scope: Scope, *, series_uid: str | None = None, page_size: int = PAGE_SIZE
) -> Iterator[InventoryItem]:
    """Every instance of ``scope``, page by page."""
    after = 0
    while True:
        items = page(session, scope, after=after, limit=page_size, series_uid=series_uid)
        yield from items
        if len(items) < page_size:
            return
        after = items[-1].id
