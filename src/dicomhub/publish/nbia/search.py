"""NBIA's simple search (``getSimpleSearch``, ``getManifestForSimpleSearch``).

tcia_utils posts numbered criteria: ``criteriaType<i>`` with ``value<i>`` (or
``fromDate<i>``/``toDate<i>`` for a date range), plus paging and sorting
fields.  Several criteria of one type are alternatives (OR); different types
must all hold (AND).  An unknown criteria type is skipped, as NBIA skips it:
tcia_utils sends its date range as ``Criteria.DateRange``, which is read here
as the date range it means.

The result is NBIA's ``PatientSearchSummary``: one entry per patient with
their matching studies and series, the total, and value counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Patient, Series, Study
from dicomhub.errors import BadRequest
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import SeriesFilter, check_name
from dicomhub.publish.nbia.catalog import HUMAN, visible_collection_ids
from dicomhub.publish.nbia.formats import parse_nbia_date
from dicomhub.publish.query import series_scope

MAX_SIZE = 1_000_000
_NUMBERED = re.compile(r"(criteriaType|value|fromDate|toDate)(\d{1,3})")
_FIELDS = frozenset({"sortField", "sortDirection", "tool", "start", "size", "format"})
_SORT_FIELDS = frozenset({"subject", "collection", "studies", "series"})
_LIST_TYPES = {
    "CollectionCriteria": "collections",
    "ImageModalityCriteria": "modalities",
    "AnatomicalSiteCriteria": "body_parts",
    "ManufacturerCriteria": "manufacturers",
    "PatientCriteria": "patients",
    "SpeciesCriteria": "species",
}
_DATE_TYPES = frozenset({"DateRangeCriteria", "Criteria.DateRange"})


@dataclass
class Criteria:
    """What a simple search asks for."""

    collections: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    manufacturers: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    species: list[str] = field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    min_studies: int = 0
    modality_anded: bool = False
    start: int = 0
    size: int = 10
    sort_field: str = "subject"
    descending: bool = False


def _int(value: str, what: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value.strip()):
        raise BadRequest(f"{what} must be a whole number, got {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise BadRequest(f"{what} must be between {low} and {high}")
    return number


def parse_criteria(items: Iterable[tuple[str, str]]) -> Criteria:
    """Read the posted form; 400 for an unknown field or a malformed value."""
    numbered: dict[int, dict[str, str]] = {}
    plain: dict[str, str] = {}
    for name, value in items:
        match = _NUMBERED.fullmatch(name)
        if match is not None:
            numbered.setdefault(int(match[2]), {})[match[1]] = value.strip()
        elif name in _FIELDS:
            plain[name] = value.strip()
        else:
            raise BadRequest(f"Invalid form parameter: {name[:40]!r}")
    criteria = Criteria()
    for index in sorted(numbered):
        _apply(criteria, numbered[index], index)
    if plain.get("start"):
        criteria.start = _int(plain["start"], "start", 0, 10_000_000)
    if plain.get("size"):
        criteria.size = _int(plain["size"], "size", 1, MAX_SIZE)
    sort = plain.get("sortField") or "subject"
    if sort not in _SORT_FIELDS:
        raise BadRequest(f"sortField must be one of {', '.join(sorted(_SORT_FIELDS))}")
    criteria.sort_field = sort
    criteria.descending = (plain.get("sortDirection") or "ascending").lower() == "descending"
    return criteria


def _apply(criteria: Criteria, entry: dict[str, str], index: int) -> None:
    kind = entry.get("criteriaType", "")
    value = entry.get("value", "")
    if kind in _LIST_TYPES:
        if value:
            getattr(criteria, _LIST_TYPES[kind]).append(check_name(value, f"value{index}"))
    elif kind in _DATE_TYPES:
        if entry.get("fromDate"):
            criteria.date_from = parse_nbia_date(entry["fromDate"], f"fromDate{index}")
        if entry.get("toDate"):
            criteria.date_to = parse_nbia_date(entry["toDate"], f"toDate{index}")
    elif kind == "MinNumberOfStudiesCriteria":
        criteria.min_studies = _int(value or "0", f"value{index}", 0, 100_000)
    elif kind == "ModalityAndedSearchCriteria":
        criteria.modality_anded = value.lower() in ("all", "true", "yes")
    # Any other type is skipped, as NBIA skips it.


def _conditions(
    session: Session, seen: Visibility, criteria: Criteria
) -> list[ColumnElement[bool]] | None:
    scope = series_scope(session, seen, SeriesFilter())
    conditions = list(scope.conditions)
    if criteria.species and HUMAN not in criteria.species:
        return None
    if criteria.collections:
        ids = [
            i for name in criteria.collections for i in visible_collection_ids(session, seen, name)
        ]
        if not ids:
            return None
        conditions.append(Series.collection_id.in_(ids))
    for values, column in (
        (criteria.modalities, Series.modality),
        (criteria.body_parts, Series.body_part_examined),
        (criteria.manufacturers, Series.manufacturer),
        (criteria.patients, Patient.patient_id),
    ):
        if values:
            conditions.append(func.upper(column).in_(sorted({v.upper() for v in values})))
    if criteria.date_from is not None:
        conditions.append(Study.study_date >= criteria.date_from)
    if criteria.date_to is not None:
        conditions.append(Study.study_date <= criteria.date_to)
    return conditions


@dataclass
class _Subject:
    ident: int
    subject: str
    project: str
    studies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    modalities: set[str] = field(default_factory=set)
    body_parts: set[str] = field(default_factory=set)


def matching_subjects(session: Session, seen: Visibility, criteria: Criteria) -> list[_Subject]:
    """Every patient that matches, with their matching studies and series, sorted."""
    conditions = _conditions(session, seen, criteria)
    if conditions is None:
        return []
    query = (
        select(
            Patient.id,
            Patient.patient_id,
            Collection.name,
            Study.study_instance_uid,
            Series.series_instance_uid,
            Series.modality,
            Series.body_part_examined,
        )
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Collection, Collection.id == Series.collection_id)
        .where(*conditions)
        .order_by(Patient.id, Study.id, Series.series_number.asc().nulls_last(), Series.id)
    )
    subjects: dict[int, _Subject] = {}
    for pid, subject, project, study, series, modality, body in session.execute(query):
        entry = subjects.setdefault(pid, _Subject(pid, subject, project))
        entry.studies.setdefault(study, []).append((series, modality))
        if modality:
            entry.modalities.add(modality)
        if body:
            entry.body_parts.add(body)
    found = list(subjects.values())
    if criteria.modality_anded and criteria.modalities:
        wanted = {m.upper() for m in criteria.modalities}
        found = [s for s in found if wanted <= {m.upper() for m in s.modalities}]
    if criteria.min_studies:
        found = [s for s in found if len(s.studies) >= criteria.min_studies]
    found.sort(key=_sort_key(criteria.sort_field), reverse=criteria.descending)
    return found


def _sort_key(field_name: str) -> Any:
    if field_name == "collection":
        return lambda s: (s.project, s.subject)
    if field_name == "studies":
        return lambda s: (len(s.studies), s.subject)
    if field_name == "series":
        return lambda s: (sum(len(v) for v in s.studies.values()), s.subject)
    return lambda s: (s.subject, s.project)


def _counts(values: Iterable[str]) -> list[dict[str, Any]]:
    tally: dict[str, int] = {}
    for value in values:
        tally[value] = tally.get(value, 0) + 1
    return [{"value": value, "count": count} for value, count in sorted(tally.items())]


def summary(subjects: list[_Subject], criteria: Criteria) -> dict[str, Any]:
    """NBIA's ``PatientSearchSummary`` for one page of ``subjects``."""
    page = subjects[criteria.start : criteria.start + criteria.size]
    result = [
        {
            "subjectId": s.subject,
            "project": s.project,
            "id": s.ident,
            "totalNumberOfStudies": len(s.studies),
            "totalNumberOfSeries": sum(len(v) for v in s.studies.values()),
            "studyIdentifiers": [
                {
                    "studyIdentifier": study,
                    "seriesIdentifiers": [uid for uid, _ in series],
                    "seriesAndModality": [{"seriesUID": u, "modality": m} for u, m in series],
                }
                for study, series in s.studies.items()
            ],
            "modalities": sorted(s.modalities),
            "bodyParts": sorted(s.body_parts),
            "species": [HUMAN],
            "authorized": True,
        }
        for s in page
    ]
    return {
        "resultSet": result,
        "totalPatients": len(subjects),
        "bodyParts": _counts(b for s in subjects for b in s.body_parts),
        "modalities": _counts(m for s in subjects for m in s.modalities),
        "collections": _counts(s.project for s in subjects),
        "species": [{"value": HUMAN, "count": len(subjects)}] if subjects else [],
        "sort": criteria.sort_field,
    }


def series_of_page(subjects: list[_Subject], criteria: Criteria) -> list[str]:
    """The matching series of one page of subjects, for the manifest."""
    page = subjects[criteria.start : criteria.start + criteria.size]
    return [uid for s in page for series in s.studies.values() for uid, _ in series]
