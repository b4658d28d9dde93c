"""DICOM JSON (PS3.18 F.2) for QIDO-RS results, built from the catalogue's columns.

Study and series results come from indexed columns (no blob is read); instance
results add what the stored header JSON holds (Rows, Columns, ...).  Missing
values are written as attributes without a ``Value``, as PS3.18 F.2.5 allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

from dicomhub.core.db import Instance
from dicomhub.publish.dicomweb.qido import Query, tag_of


class SeriesFields(Protocol):
    """What a series result reads: a :class:`~dicomhub.core.db.Series` or a lighter row."""

    @property
    def series_date(self) -> date | None: ...
    @property
    def modality(self) -> str: ...
    @property
    def manufacturer(self) -> str: ...
    @property
    def series_description(self) -> str: ...
    @property
    def manufacturer_model_name(self) -> str: ...
    @property
    def body_part_examined(self) -> str: ...
    @property
    def series_instance_uid(self) -> str: ...
    @property
    def series_number(self) -> int | None: ...
    @property
    def instance_count(self) -> int: ...


class StudyFields(Protocol):
    """What a study result reads of a study."""

    @property
    def study_date(self) -> date | None: ...
    @property
    def study_time(self) -> str: ...
    @property
    def accession_number(self) -> str: ...
    @property
    def study_description(self) -> str: ...
    @property
    def patient_age(self) -> str: ...
    @property
    def study_instance_uid(self) -> str: ...
    @property
    def study_id(self) -> str: ...


class PatientFields(Protocol):
    """What a study result reads of a patient."""

    @property
    def patient_name(self) -> str: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def patient_sex(self) -> str: ...
    @property
    def patient_age(self) -> str: ...


CHARSET = {"00080005": {"vr": "CS", "Value": ["ISO_IR 192"]}}
ONLINE = {"00080056": {"vr": "CS", "Value": ["ONLINE"]}}
_INSTANCE_TAGS = (
    "00280010",  # Rows
    "00280011",  # Columns
    "00280008",  # NumberOfFrames
    "00280100",  # BitsAllocated
    "00280004",  # PhotometricInterpretation
    "00200037",  # ImageOrientationPatient
    "00200032",  # ImagePositionPatient
    "00080008",  # ImageType
)


def _value(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(value)}]}
    if vr == "DA" and isinstance(value, date):
        return {"vr": vr, "Value": [value.strftime("%Y%m%d")]}
    if isinstance(value, list):
        return {"vr": vr, "Value": value} if value else {"vr": vr}
    return {"vr": vr, "Value": [value]}


def _patient(patient: PatientFields) -> dict[str, Any]:
    return {
        "00100010": _value("PN", patient.patient_name),
        "00100020": _value("LO", patient.patient_id),
        "00100030": {"vr": "DA"},
        "00100040": _value("CS", patient.patient_sex),
    }


def _study(study: StudyFields, patient: PatientFields) -> dict[str, Any]:
    return {
        "00080020": _value("DA", study.study_date),
        "00080030": _value("TM", study.study_time),
        "00080050": _value("SH", study.accession_number),
        "00080090": {"vr": "PN"},
        "00081030": _value("LO", study.study_description),
        **_patient(patient),
        "00101010": _value("AS", study.patient_age or patient.patient_age),
        "0020000D": _value("UI", study.study_instance_uid),
        "00200010": _value("SH", study.study_id),
    }


def _series(series: SeriesFields) -> dict[str, Any]:
    return {
        "00080021": _value("DA", series.series_date),
        "00080060": _value("CS", series.modality),
        "00080070": _value("LO", series.manufacturer),
        "0008103E": _value("LO", series.series_description),
        "00081090": _value("LO", series.manufacturer_model_name),
        "00180015": _value("CS", series.body_part_examined),
        "0020000E": _value("UI", series.series_instance_uid),
        "00200011": _value("IS", series.series_number),
        "00201209": _value("IS", series.instance_count),
    }


def _sorted(attributes: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(attributes.items()))


def study_result(
    study: StudyFields, patient: PatientFields, counts: tuple[int, int, list[str]], base: str
) -> dict[str, Any]:
    """One study of a QIDO-RS study search."""
    n_series, n_instances, modalities = counts
    return _sorted(
        CHARSET
        | ONLINE
        | _study(study, patient)
        | {
            "00080061": _value("CS", modalities),
            "00081190": _value("UR", f"{base}/studies/{study.study_instance_uid}"),
            "00201206": _value("IS", n_series),
            "00201208": _value("IS", n_instances),
        }
    )


def series_result(
    series: SeriesFields, study: StudyFields, patient: PatientFields, query: Query, base: str
) -> dict[str, Any]:
    """One series of a QIDO-RS series search (study attributes when searching all series)."""
    url = f"{base}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
    out = CHARSET | ONLINE | _series(series) | {"00081190": _value("UR", url)}
    out["0020000D"] = _value("UI", study.study_instance_uid)
    if query.include_all or query.includes:
        out |= _wanted(_study(study, patient), query)
    return _sorted(out)


def instance_result(
    instance: Instance,
    series: SeriesFields,
    study: StudyFields,
    patient: PatientFields,
    query: Query,
    base: str,
) -> dict[str, Any]:
    """One instance of a QIDO-RS instance search, with image attributes from its header."""
    url = (
        f"{base}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    out: dict[str, Any] = CHARSET | ONLINE
    out |= {
        "00080016": _value("UI", instance.sop_class_uid),
        "00080018": _value("UI", instance.sop_instance_uid),
        "00081190": _value("UR", url),
        "00083002": _value("UI", instance.transfer_syntax_uid),
        "0020000D": _value("UI", study.study_instance_uid),
        "0020000E": _value("UI", series.series_instance_uid),
        "00200013": _value("IS", instance.instance_number),
    }
    header = instance.header if isinstance(instance.header, dict) else {}
    for tag in _INSTANCE_TAGS:
        if tag in header:
            out[tag] = header[tag]
    if query.include_all:
        out |= _wanted(_study(study, patient) | _series(series), query)
        out |= {tag: value for tag, value in header.items() if _inline(value)}
    elif query.includes:
        out |= _wanted(_study(study, patient) | _series(series), query)
        out |= {tag: header[tag] for tag in _tags(query.includes) if tag in header}
    return _sorted(out)


def _inline(value: Any) -> bool:
    return not (isinstance(value, dict) and "BulkDataURI" in value)


def _tags(keywords: Iterable[str]) -> list[str]:
    return [tag_of(keyword) for keyword in keywords]


def _wanted(attributes: dict[str, Any], query: Query) -> dict[str, Any]:
    if query.include_all:
        return attributes
    wanted = set(_tags(query.includes))
    return {tag: value for tag, value in attributes.items() if tag in wanted}
