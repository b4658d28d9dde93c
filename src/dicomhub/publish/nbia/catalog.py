"""The catalogue as NBIA v4 shows it: series, patients, studies, value lists and counts.

Every query starts from the public query layer's :func:`series_scope` (or the
caller's :class:`Visibility` for patient and study rows), so NBIA's routes see
exactly what the rest of the public side sees.  On top of it this module adds
what NBIA does differently: names compare case-insensitively (``UPPER(x) =
UPPER(:p)``), an unknown or hidden collection gives no rows rather than a 404,
value lists are upper-cased, and counts count patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Result, Select, distinct, func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Patient, Series, Site, Study
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import SeriesFilter
from dicomhub.publish.nbia.formats import nbia_date
from dicomhub.publish.query import Scope, joined_series, ordered, series_scope, text_key

_CHUNK = 500
#: The one species the archive holds (SNOMED CT "Homo sapiens"), as simple search reports it.
HUMAN = "337915000"
HUMAN_NAME = "Homo sapiens"


@dataclass(frozen=True)
class NbiaFilter:
    """The eight getSeries filters (and what other v4 resources filter on)."""

    collection: str | None = None
    patient_id: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    modality: str | None = None
    body_part: str | None = None
    manufacturer: str | None = None
    model: str | None = None


def visible_collection_ids(session: Session, seen: Visibility, name: str) -> list[int]:
    """Ids of the visible collections called ``name``, compared case-insensitively."""
    query = select(Collection.id).where(
        func.upper(Collection.name) == name.upper(), seen.collection_clause()
    )
    return list(session.scalars(query))


def nbia_scope(session: Session, seen: Visibility, wanted: NbiaFilter) -> Scope | None:
    """The access-checked scope of ``wanted``; None when it can match nothing."""
    exact = SeriesFilter(
        study_uids=(wanted.study_uid,) if wanted.study_uid else (),
        series_uids=(wanted.series_uid,) if wanted.series_uid else (),
    )
    scope = series_scope(session, seen, exact)
    extra: list[ColumnElement[bool]] = []
    if wanted.collection:
        ids = visible_collection_ids(session, seen, wanted.collection)
        if not ids:
            return None
        extra.append(Series.collection_id.in_(ids))
    for value, column in (
        (wanted.modality, Series.modality),
        (wanted.body_part, Series.body_part_examined),
        (wanted.manufacturer, Series.manufacturer),
        (wanted.model, Series.manufacturer_model_name),
        (wanted.patient_id, Patient.patient_id),
    ):
        if value:
            extra.append(func.upper(column) == value.upper())
    needs_patient = scope.needs_patient or bool(wanted.patient_id)
    return Scope(scope.conditions + tuple(extra), scope.needs_study, needs_patient)


# -- series -----------------------------------------------------------------------------

SERIES_COLUMNS: Sequence[str] = (
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "ProtocolName",
    "SeriesDate",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesNumber",
    "AnnotationsFlag",
    "Collection",
    "Site",
    "PatientID",
    "PatientSex",
    "PatientAge",
    "AdmittingDiagnosisDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ImageCount",
    "MaxSubmissionTimestamp",
    "LicenseName",
    "LicenseURI",
    "DataDescriptionURI",
    "FileSize",
    "ReleasedStatus",
    "DateReleased",
    "StudyDesc",
    "StudyDate",
    "ThirdPartyAnalysis",
    "Authorized",
)


def _series_query(conditions: Iterable[ColumnElement[bool]]) -> Select[Any]:
    return (
        joined_series()
        .add_columns(
            Series.protocol_name,
            Series.software_versions,
            Series.created_at,
            Study.study_id.label("study_number"),
            Study.patient_age.label("study_patient_age"),
            Patient.patient_name,
            Patient.patient_sex,
            Patient.patient_age,
            Patient.ethnic_group,
            Collection.license_name,
            Collection.license_url,
            Collection.doi,
            Site.name.label("site_name"),
        )
        .outerjoin(Site, Site.id == Patient.site_id)
        .where(*conditions)
    )


#: What :func:`series_row` and :func:`series_rows` read of each row, in the order unpacked.
_SERIES_FIELDS = (
    "series_instance_uid",
    "study_instance_uid",
    "modality",
    "protocol_name",
    "series_date",
    "series_description",
    "body_part_examined",
    "series_number",
    "name",
    "site_name",
    "patient_id",
    "patient_sex",
    "study_patient_age",
    "patient_age",
    "manufacturer",
    "manufacturer_model_name",
    "software_versions",
    "instance_count",
    "created_at",
    "license_name",
    "license_url",
    "doi",
    "total_size",
    "study_description",
    "study_date",
)


def _series_dict(fields: Sequence[Any]) -> dict[str, Any]:
    """The v4 ``getSeries`` row from the values of :data:`_SERIES_FIELDS`, in that order."""
    (
        uid,
        study_uid,
        modality,
        protocol,
        series_date,
        description,
        body_part,
        number,
        collection,
        site,
        patient_id,
        sex,
        study_age,
        patient_age,
        manufacturer,
        model,
        software,
        count,
        created,
        licence,
        licence_url,
        doi,
        size,
        study_description,
        study_date,
    ) = fields
    released = nbia_date(created)
    return {
        "SeriesInstanceUID": uid,
        "StudyInstanceUID": study_uid,
        "Modality": modality,
        "ProtocolName": protocol,
        "SeriesDate": nbia_date(series_date),
        "SeriesDescription": description,
        "BodyPartExamined": body_part,
        "SeriesNumber": number,
        "AnnotationsFlag": None,
        "Collection": collection,
        "Site": site,
        "PatientID": patient_id,
        "PatientSex": sex,
        "PatientAge": study_age or patient_age,
        "AdmittingDiagnosisDescription": None,
        "Manufacturer": manufacturer,
        "ManufacturerModelName": model,
        "SoftwareVersions": software,
        "ImageCount": count,
        "MaxSubmissionTimestamp": released,
        "LicenseName": licence,
        "LicenseURI": licence_url,
        "DataDescriptionURI": doi,
        "FileSize": size,
        "ReleasedStatus": "Released",
        "DateReleased": released,
        "StudyDesc": study_description,
        "StudyDate": nbia_date(study_date),
        "ThirdPartyAnalysis": "NO",
        "Authorized": 1,
    }


def series_rows(result: Result[Any]) -> list[dict[str, Any]]:
    """:func:`series_row` for every row of ``result``, without per-field attribute lookups.

    A collection's getSeries is thousands of rows of 30 fields; reading a Row
    by attribute costs about ten times an index, so the fields are picked by
    position (found once from the result's keys) and unpacked.
    """
    keys = list(result.keys())
    pick = itemgetter(*(keys.index(name) for name in _SERIES_FIELDS))
    return [_series_dict(pick(row)) for row in result]


def series_row(row: Any) -> dict[str, Any]:
    """One series in v4 ``getSeries`` key order."""
    return _series_dict([getattr(row, name) for name in _SERIES_FIELDS])


def find_series(
    session: Session,
    seen: Visibility,
    wanted: NbiaFilter,
    *,
    updated_after: datetime | None = None,
) -> list[dict[str, Any]]:
    """v4 getSeries (and getUpdatedSeries with ``updated_after``), in stable order."""
    scope = nbia_scope(session, seen, wanted)
    if scope is None:
        return []
    conditions = list(scope.conditions)
    if updated_after is not None:
        conditions.append(Series.updated_at > updated_after)
    result = session.execute(ordered(session, _series_query(conditions)))
    return series_rows(result)


METADATA_COLUMNS: Sequence[str] = (
    "PatientID",
    "PatientName",
    "PatientSex",
    "EthnicGroup",
    "Phantom",
    "SpeciesCode",
    "SpeciesDescription",
    "StudyInstanceUID",
    "StudyDate",
    "StudyDesc",
    "AdmittingDiagnosisDescription",
    "StudyID",
    "PatientAge",
    "LongitudinalTemporalEventType",
    "LongitudinalTemporalOffsetFromEvent",
    "SeriesInstanceUID",
    "Collection",
    "Site",
    "Modality",
    "ProtocolName",
    "SeriesDate",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesNumber",
    "AnnotationsFlag",
    "Manufacturer",
    "ManufacturerModelName",
    "PixelSpacing(mm)-Row",
    "SliceThickness(mm)",
    "SoftwareVersions",
    "ImageCount",
    "MaxSubmissionTimestamp",
    "LicenseName",
    "LicenseURI",
    "DataDescriptionURI",
    "FileSize",
    "ReleasedStatus",
    "DateReleased",
    "ThirdPartyAnalysis",
    "Authorized",
)


def metadata_row(row: Any) -> dict[str, Any]:
    """One series in v4 ``getSeriesMetadata`` column order."""
    series = series_row(row)
    out: dict[str, Any] = dict.fromkeys(METADATA_COLUMNS)
    out.update({key: value for key, value in series.items() if key in out})
    out |= {
        "PatientName": row.patient_name,
        "EthnicGroup": row.ethnic_group,
        "SpeciesCode": HUMAN,
        "SpeciesDescription": HUMAN_NAME,
        "StudyID": row.study_number,
    }
    return out


def series_by_uids(session: Session, seen: Visibility, uids: Sequence[str]) -> list[Any]:
    """The visible series among ``uids``, in the order asked (unknown or hidden ones left out)."""
    found: dict[str, Any] = {}
    for start in range(0, len(uids), _CHUNK):
        chunk = tuple(uids[start : start + _CHUNK])
        scope = series_scope(session, seen, SeriesFilter(series_uids=chunk))
        for row in session.execute(_series_query(scope.conditions)):
            found[row.series_instance_uid] = row
    return [found[uid] for uid in uids if uid in found]


# -- patients and studies ---------------------------------------------------------------

PATIENT_COLUMNS: Sequence[str] = (
    "PatientId",
    "PatientName",
    "PatientSex",
    "EthnicGroup",
    "Collection",
    "Phantom",
    "SpeciesCode",
    "SpeciesDescription",
    "Authorized",
)


def _patient_conditions(
    session: Session, seen: Visibility, collection: str | None, patient_id: str | None
) -> list[ColumnElement[bool]] | None:
    conditions: list[ColumnElement[bool]] = [Patient.collection_id.in_(seen.collection_ids())]
    if collection:
        ids = visible_collection_ids(session, seen, collection)
        if not ids:
            return None
        conditions.append(Patient.collection_id.in_(ids))
    if patient_id:
        conditions.append(func.upper(Patient.patient_id) == patient_id.upper())
    return conditions


def find_patients(
    session: Session,
    seen: Visibility,
    collection: str | None,
    patient_id: str | None = None,
    *,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """v4 getPatient (and NewPatientsInCollection with ``since``)."""
    conditions = _patient_conditions(session, seen, collection, patient_id)
    if conditions is None:
        return []
    if since is not None:
        conditions.append(Patient.created_at >= since)
    query = (
        select(Patient, Collection.name)
        .join(Collection, Collection.id == Patient.collection_id)
        .where(*conditions)
        .order_by(text_key(session, Collection.name), text_key(session, Patient.patient_id))
    )
    return [
        {
            "PatientId": patient.patient_id,
            "PatientName": patient.patient_name,
            "PatientSex": patient.patient_sex,
            "EthnicGroup": patient.ethnic_group,
            "Collection": name,
            "Phantom": None,
            "SpeciesCode": HUMAN,
            "SpeciesDescription": HUMAN_NAME,
            "Authorized": 1,
        }
        for patient, name in session.execute(query)
    ]


STUDY_COLUMNS: Sequence[str] = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyDescription",
    "AdmittingDiagnosesDescription",
    "StudyID",
    "PatientAge",
    "PatientID",
    "PatientName",
    "PatientSex",
    "EthnicGroup",
    "Collection",
    "SeriesCount",
    "LongitudinalTemporalEventType",
    "LongitudinalTemporalOffsetFromEvent",
    "Authorized",
)


def find_studies(
    session: Session,
    seen: Visibility,
    collection: str | None,
    patient_id: str | None = None,
    study_uid: str | None = None,
    *,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """v4 getPatientStudy (and NewStudiesInPatientCollection with ``since``)."""
    conditions = _patient_conditions(session, seen, collection, patient_id)
    if conditions is None:
        return []
    if study_uid:
        conditions.append(Study.study_instance_uid == study_uid)
    if since is not None:
        conditions.append(Study.created_at >= since)
    counts = (
        select(Series.study_id, func.count(Series.id).label("n"))
        .group_by(Series.study_id)
        .subquery()
    )
    query = (
        select(Study, Patient, Collection.name, counts.c.n)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Collection, Collection.id == Patient.collection_id)
        .outerjoin(counts, counts.c.study_id == Study.id)
        .where(*conditions)
        .order_by(
            text_key(session, Collection.name),
            text_key(session, Patient.patient_id),
            Study.study_date.asc().nulls_last(),
            Study.id,
        )
    )
    return [
        {
            "StudyInstanceUID": study.study_instance_uid,
            "StudyDate": nbia_date(study.study_date),
            "StudyDescription": study.study_description,
            "AdmittingDiagnosesDescription": None,
            "StudyID": study.study_id,
            "PatientAge": study.patient_age or patient.patient_age,
            "PatientID": patient.patient_id,
            "PatientName": patient.patient_name,
            "PatientSex": patient.patient_sex,
            "EthnicGroup": patient.ethnic_group,
            "Collection": name,
            "SeriesCount": int(count or 0),
            "LongitudinalTemporalEventType": None,
            "LongitudinalTemporalOffsetFromEvent": None,
            "Authorized": 1,
        }
        for study, patient, name, count in session.execute(query)
    ]


# -- value lists and counts -------------------------------------------------------------

#: v4 value-list name → the series column it lists.
VALUE_COLUMNS: dict[str, Any] = {
    "Modality": Series.modality,
    "BodyPartExamined": Series.body_part_examined,
    "Manufacturer": Series.manufacturer,
}


def values_of(session: Session, seen: Visibility, wanted: NbiaFilter, key: str) -> list[str]:
    """Distinct upper-cased values of one column in scope (v4 get*Values)."""
    scope = nbia_scope(session, seen, wanted)
    if scope is None:
        return []
    column = func.upper(VALUE_COLUMNS[key])
    listed = select(column).select_from(Series).distinct()
    query = scope.apply(listed).where(VALUE_COLUMNS[key] != "")
    return sorted(str(value) for value in session.scalars(query))


def collection_names(session: Session, seen: Visibility) -> list[str]:
    """The visible collections that hold at least one series (v4 getCollectionValues)."""
    scope = series_scope(session, seen, SeriesFilter())
    ids = scope.apply(select(Series.collection_id).distinct())
    query = select(Collection.name).where(Collection.id.in_(ids))
    return list(session.scalars(query.order_by(text_key(session, Collection.name))))


def patient_counts(
    session: Session, seen: Visibility, wanted: NbiaFilter, key: str | None
) -> list[tuple[str, int]]:
    """Patients per value of ``key`` (None: per collection), as the *AndCounts resources count."""
    scope = nbia_scope(session, seen, wanted)
    if scope is None:
        return []
    scope = Scope(scope.conditions, True, scope.needs_patient)
    if key is None:
        column: Any = Collection.name
        counted = select(column, func.count(distinct(Study.patient_id))).select_from(Series)
        query = scope.apply(counted).join(Collection, Collection.id == Series.collection_id)
    else:
        column = func.upper(VALUE_COLUMNS[key])
        counted = select(column, func.count(distinct(Study.patient_id))).select_from(Series)
        query = scope.apply(counted).where(VALUE_COLUMNS[key] != "")
    rows = [(str(value), int(count)) for value, count in session.execute(query.group_by(column))]
    return sorted(rows)


def patients_with(session: Session, seen: Visibility, wanted: NbiaFilter) -> list[str]:
    """Distinct PatientIDs in scope (v4 getPatientByCollectionAndModality)."""
    scope = nbia_scope(session, seen, wanted)
    if scope is None:
        return []
    scope = Scope(scope.conditions, True, True)
    query = scope.apply(select(Patient.patient_id).select_from(Series).distinct())
    return sorted(session.scalars(query))


def collection_descriptions(
    session: Session, seen: Visibility, name: str | None
) -> list[dict[str, Any]]:
    """v4 getCollectionDescriptions (Jackson bean: nulls kept)."""
    query = select(Collection).where(seen.collection_clause())
    if name:
        query = query.where(func.upper(Collection.name) == name.upper())
    query = query.order_by(text_key(session, Collection.name))
    return [
        {
            "description": collection.description,
            "id": collection.id,
            "collectionName": collection.name,
            "descriptionURI": collection.doi or None,
        }
        for collection in session.scalars(query)
    ]


def collections_for_doi(
    session: Session, seen: Visibility, doi: str, *, series: bool
) -> list[dict[str, Any]]:
    """v4 getCollectionOrSeriesForDOI: collections (or their series) with this DOI URL."""
    query = select(Collection.id, Collection.name).where(
        Collection.doi == doi, seen.collection_clause()
    )
    found = list(session.execute(query.order_by(text_key(session, Collection.name))))
    if not series:
        return [
            {"collection": name, "thirdPartyAnanlysis": "NO", "authorized": 1} for _, name in found
        ]
    out: list[dict[str, Any]] = []
    for ident, name in found:
        uids = session.scalars(
            select(Series.series_instance_uid)
            .where(Series.collection_id == ident)
            .order_by(Series.id)
        )
        out.extend(
            {
                "collection": name,
                "thirdPartyAnanlysis": "NO",
                "seriesInstanceUID": uid,
                "authorized": 1,
            }
            for uid in uids
        )
    return out
