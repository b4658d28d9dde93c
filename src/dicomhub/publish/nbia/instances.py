"""Instances of one visible series, for NBIA's image downloads and instance lists.

A series is found through the public query layer's :func:`series_scope`, so an
instance is only ever reached through a series the caller may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Instance, Series
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import SeriesFilter
from dicomhub.publish.query import series_scope


@dataclass(frozen=True)
class InstanceRow:
    """What image downloads need of one instance."""

    sop_uid: str
    number: int | None
    blob_key: str
    size: int
    sha256: str
    md5: str
    acquisition: Any


def one_series(session: Session, seen: Visibility, uid: str) -> Any | None:
    """The visible series ``uid`` with its collection's licence, or None."""
    scope = series_scope(session, seen, SeriesFilter(series_uids=(uid,)))
    query = (
        select(
            Series.id,
            Series.series_instance_uid,
            Series.instance_count,
            Series.total_size,
            Collection.name,
            Collection.license_name,
            Collection.license_url,
            Collection.citation,
        )
        .join(Collection, Collection.id == Series.collection_id)
        .where(*scope.conditions)
    )
    return session.execute(query).first()


def instances_of(session: Session, series_id: int, *, with_acquisition: bool) -> list[InstanceRow]:
    """Instances of one series by InstanceNumber (missing last), then by row id."""
    columns: list[Any] = [
        Instance.sop_instance_uid,
        Instance.instance_number,
        Instance.blob_key,
        Instance.size,
        Instance.sha256,
        Instance.md5,
    ]
    if with_acquisition:
        columns.append(Instance.header)
    query = (
        select(*columns)
        .where(Instance.series_id == series_id)
        .order_by(Instance.instance_number.asc().nulls_last(), Instance.id)
    )
    out = []
    for row in session.execute(query):
        acquisition = _acquisition(row[6]) if with_acquisition else None
        out.append(InstanceRow(row[0], row[1], row[2], int(row[3]), row[4], row[5], acquisition))
    return out


def _acquisition(header: Any) -> Any:
    element = header.get("00200012") if isinstance(header, dict) else None
    values = element.get("Value") if isinstance(element, dict) else None
    return values[0] if values else None


def series_uid_of_instances(session: Session, seen: Visibility, series_uid: str) -> list[str]:
    """SOPInstanceUIDs of a visible series, in instance order (empty if not visible)."""
    series = one_series(session, seen, series_uid)
    if series is None:
        return []
    query = (
        select(Instance.sop_instance_uid)
        .where(Instance.series_id == series.id)
        .order_by(Instance.instance_number.asc().nulls_last(), Instance.id)
    )
    return list(session.scalars(query))


def one_instance(
    session: Session, seen: Visibility, series_uid: str, sop_uid: str
) -> InstanceRow | None:
    """One instance of a visible series, or None."""
    series = one_series(session, seen, series_uid)
    if series is None:
        return None
    row = session.execute(
        select(
            Instance.sop_instance_uid,
            Instance.instance_number,
            Instance.blob_key,
            Instance.size,
            Instance.sha256,
            Instance.md5,
        ).where(Instance.series_id == series.id, Instance.sop_instance_uid == sop_uid)
    ).first()
    if row is None:
        return None
    return InstanceRow(row[0], row[1], row[2], int(row[3]), row[4], row[5], None)
