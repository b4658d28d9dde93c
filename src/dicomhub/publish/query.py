"""The public query layer: series search over the catalogue, in SQL, for one caller.

Every query starts from :func:`series_scope`, which applies the caller's
:class:`~dicomhub.publish.access.Visibility` and a
:class:`~dicomhub.publish.filters.SeriesFilter`, joining the study and patient
tables only when a filter needs them.  Counting, paging, faceting, basket
inserts and manifests all reuse that one scope, so they cannot disagree about
which series a caller may see.  The JSON API, the pages, and the standard APIs
(NBIA, DICOMweb) sit on top of this module.

Ordering is total and the same on SQLite and PostgreSQL: text keys are
compared byte-wise (``COLLATE "C"`` on PostgreSQL, SQLite's default), missing
dates and numbers sort last, and row ids break every tie.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Patient, Series, Study
from dicomhub.errors import NotFound
from dicomhub.publish.access import Visibility, nothing
from dicomhub.publish.filters import Page, SeriesFilter, check_uid

LOGGER = logging.getLogger(__name__)

_STUDY_FIELDS = ("study_uids", "study_date_from", "study_date_to")


@dataclass(frozen=True)
class Scope:
    """The conditions a filtered, access-checked series query needs, and its joins."""

    conditions: tuple[ColumnElement[bool], ...]
    needs_study: bool
    needs_patient: bool

    def apply(self, query: Select[Any]) -> Select[Any]:
        """Add this scope's joins (from :class:`Series`) and conditions to ``query``."""
        if self.needs_study or self.needs_patient:
            query = query.join(Study, Study.id == Series.study_id)
        if self.needs_patient:
            query = query.join(Patient, Patient.id == Study.patient_id)
        return query.where(*self.conditions)

    def series_ids(self) -> Select[Any]:
        """The ids of every series in scope (for ``IN`` and ``INSERT ... SELECT``)."""
        return self.apply(select(Series.id))


def resolve_collections(
    session: Session, visibility: Visibility, names: tuple[str, ...]
) -> list[int]:
    """The ids of the named collections; NotFound for any the caller cannot see."""
    if not names:
        return []
    rows = session.execute(
        select(Collection.id, Collection.name).where(
            Collection.name.in_(names), visibility.collection_clause()
        )
    ).all()
    found = {name: ident for ident, name in rows}
    for name in names:
        if name not in found:
            raise NotFound(f"no collection named {name!r}")
    return [found[name] for name in names]


def series_scope(
    session: Session, visibility: Visibility, wanted: SeriesFilter, *, skip: str | None = None
) -> Scope:
    """The :class:`Scope` of ``wanted`` for this caller (``skip`` drops one filter field).

    Raises
    ------
    NotFound
        A named collection does not exist or is not visible to the caller.
    """
    if skip is not None:
        wanted = wanted.without(skip)
    conditions: list[ColumnElement[bool]] = [Series.collection_id.in_(visibility.collection_ids())]
    if wanted.collections:
        ids = resolve_collections(session, visibility, wanted.collections)
        conditions.append(Series.collection_id.in_(ids) if ids else nothing())
    for attr, column in (
        ("modalities", Series.modality),
        ("body_parts", Series.body_part_examined),
        ("manufacturers", Series.manufacturer),
        ("models", Series.manufacturer_model_name),
        ("sop_classes", Series.sop_class_uid),
        ("series_uids", Series.series_instance_uid),
    ):
        values = getattr(wanted, attr)
        if values:
            conditions.append(column.in_(values))
    if wanted.description:
        conditions.append(description_match(session, wanted.description))
    if wanted.study_uids:
        conditions.append(Study.study_instance_uid.in_(wanted.study_uids))
    if wanted.study_date_from is not None:
        conditions.append(Study.study_date >= wanted.study_date_from)
    if wanted.study_date_to is not None:
        conditions.append(Study.study_date <= wanted.study_date_to)
    if wanted.patient_ids:
        conditions.append(Patient.patient_id.in_(wanted.patient_ids))
    needs_study = any(getattr(wanted, name) for name in _STUDY_FIELDS)
    return Scope(tuple(conditions), needs_study, bool(wanted.patient_ids))


def _fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def description_match(session: Session, text: str) -> ColumnElement[bool]:
    """``series_description`` contains ``text``, ignoring case, for any alphabet.

    SQLite's ``lower()`` folds ASCII only and the test PostgreSQL runs with
    ``LC_CTYPE=C``, so a non-ASCII needle ("MÜLLER") is matched through
    Python's ``casefold`` registered on the SQLite connection, or ICU's case
    mapping on PostgreSQL.  ASCII needles keep the plain ``lower()``, which
    is what both databases do fastest.
    """
    column = Series.series_description
    if text.isascii():
        return func.lower(column).contains(text.lower(), autoescape=True)
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        raw = session.connection().connection.driver_connection
        raw.create_function(  # type: ignore[union-attr]
            "dicomhub_casefold", 1, _fold, deterministic=True
        )
        folded = func.dicomhub_casefold(column)
        return folded.contains(text.casefold(), autoescape=True)
    if dialect == "postgresql":
        icu = func.lower(column.collate("und-x-icu"))
        return icu.contains(text.lower(), autoescape=True)
    return func.lower(column).contains(text.lower(), autoescape=True)


def text_key(session: Session, column: Any) -> Any:
    """``column`` compared byte-wise on every backend (for the same order everywhere)."""
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column


def series_columns() -> tuple[Any, ...]:
    """The columns of one search result row (series with its study, patient, collection)."""
    return (
        Series.id,
        Series.series_instance_uid,
        Series.series_number,
        Series.series_description,
        Series.modality,
        Series.body_part_examined,
        Series.manufacturer,
        Series.manufacturer_model_name,
        Series.sop_class_uid,
        Series.series_date,
        Series.instance_count,
        Series.total_size,
        Study.study_instance_uid,
        Study.study_date,
        Study.study_description,
        Patient.patient_id,
        Collection.name,
    )


def joined_series() -> Select[Any]:
    """``SELECT`` :func:`series_columns` with every join a result row needs."""
    return (
        select(*series_columns())
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Collection, Collection.id == Series.collection_id)
    )


def ordered(session: Session, query: Select[Any]) -> Select[Any]:
    """The public side's stable order over :func:`joined_series` rows."""
    return query.order_by(
        text_key(session, Collection.name),
        text_key(session, Patient.patient_id),
        Study.study_date.asc().nulls_last(),
        Study.id,
        Series.series_number.asc().nulls_last(),
        Series.id,
    )


def series_row(row: Any) -> dict[str, Any]:
    """One result row as the JSON API shows it."""
    return {
        "series_uid": row.series_instance_uid,
        "study_uid": row.study_instance_uid,
        "patient_id": row.patient_id,
        "collection": row.name,
        "series_number": row.series_number,
        "series_description": row.series_description,
        "modality": row.modality,
        "body_part": row.body_part_examined,
        "manufacturer": row.manufacturer,
        "model": row.manufacturer_model_name,
        "sop_class_uid": row.sop_class_uid,
        "series_date": _iso(row.series_date),
        "study_date": _iso(row.study_date),
        "study_description": row.study_description,
        "instances": row.instance_count,
        "size": row.total_size,
    }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class SearchResult:
    """One page of a series search and how many series match in all."""

    total: int
    page: Page
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "limit": self.page.limit,
            "offset": self.page.offset,
            "results": self.rows,
        }


def count_series(session: Session, scope: Scope) -> int:
    """How many series are in ``scope`` (one ``COUNT``)."""
    return int(session.scalar(scope.apply(select(func.count(Series.id)))) or 0)


def counts_by_collection(session: Session, scope: Scope) -> dict[int, int]:
    """How many series of ``scope`` each collection holds (one grouped query, no joins).

    An index on ``series(collection_id, ...)`` answers this without sorting.
    """
    grouped = cast("Select[Any]", select(Series.collection_id, func.count()))
    query = scope.apply(grouped).group_by(Series.collection_id)
    return {int(ident): int(count) for ident, count in session.execute(query)}


def window(
    session: Session, per_collection: Mapping[int, int], page: Page
) -> tuple[list[int], int]:
    """The collections a page overlaps, and the page's offset inside the first of them.

    Results are ordered by collection name first, so knowing how many series
    match in each collection is enough to know which collections a page of
    results can come from: the ordered query then sorts only their series,
    not every match in the archive.
    """
    ids = [ident for ident, count in per_collection.items() if count]
    if not ids:
        return [], 0
    order = text_key(session, Collection.name)
    names = select(Collection.id).where(Collection.id.in_(ids)).order_by(order)
    before = 0
    chosen: list[int] = []
    skip = 0
    end = page.offset + page.limit
    for ident in session.scalars(names):
        count = per_collection[ident]
        if before + count > page.offset and before < end:
            if not chosen:
                skip = page.offset - before
            chosen.append(ident)
        before += count
    return chosen, skip


def search_series(
    session: Session,
    visibility: Visibility,
    wanted: SeriesFilter,
    page: Page,
    per_collection: Mapping[int, int] | None = None,
) -> SearchResult:
    """One page of the series matching ``wanted`` that the caller may see, in stable order.

    ``per_collection`` (matching series per collection id) may be passed by a
    caller that already counted them (the faceted search does).
    """
    scope = series_scope(session, visibility, wanted)
    if per_collection is None:
        per_collection = counts_by_collection(session, scope)
    total = sum(per_collection.values())
    rows: list[dict[str, Any]] = []
    chosen, skip = window(session, per_collection, page)
    if chosen:
        query = joined_series().where(*scope.conditions, Series.collection_id.in_(chosen))
        result = session.execute(ordered(session, query).limit(page.limit).offset(skip))
        rows = [series_row(row) for row in result]
    return SearchResult(total, page, rows)


def series_detail(session: Session, visibility: Visibility, uid: str) -> dict[str, Any]:
    """One visible series by UID with its study, patient and collection; else NotFound."""
    uid = check_uid(uid, "SeriesInstanceUID")
    query = joined_series().add_columns(
        Series.protocol_name,
        Series.software_versions,
        Series.frame_of_reference_uid,
        Patient.patient_sex,
        Patient.patient_age,
    )
    row = session.execute(
        query.where(
            Series.series_instance_uid == uid,
            Series.collection_id.in_(visibility.collection_ids()),
        )
    ).first()
    if row is None:
        raise NotFound(f"no series {uid}")
    detail = series_row(row)
    detail |= {
        "protocol_name": row.protocol_name,
        "software_versions": row.software_versions,
        "frame_of_reference_uid": row.frame_of_reference_uid,
        "patient_sex": row.patient_sex,
        "patient_age": row.patient_age,
    }
    return detail
