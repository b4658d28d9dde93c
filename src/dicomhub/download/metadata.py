"""Series metadata as NBIA's ``getSeriesMetadata`` answers it, under one set of names.

v4 answers with ``SeriesInstanceUID``, ``PatientID``, ``ImageCount`` and
``FileSize``; v1/v2 (and NBIA Data Retriever's own report) with ``Series UID``,
``Subject ID``, ``Number of Images`` and ``File Size``.  Both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Our name -> the header names servers use for it, in order of preference.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "uid": ("SeriesInstanceUID", "Series UID", "Series Instance UID"),
    "collection": ("Collection",),
    "patient_id": ("PatientID", "Subject ID", "Patient ID", "PatientId"),
    "study_uid": ("StudyInstanceUID", "Study UID", "Study Instance UID"),
    "study_date": ("StudyDate", "Study Date"),
    "study_description": ("StudyDesc", "StudyDescription", "Study Description"),
    "series_description": ("SeriesDescription", "Series Description"),
    "series_number": ("SeriesNumber", "Series Number"),
    "modality": ("Modality",),
    "manufacturer": ("Manufacturer",),
    "sop_class_uid": ("SOPClassUID", "SOP Class UID"),
    "license_name": ("LicenseName", "License Name"),
    "license_url": ("LicenseURI", "License URL", "LicenseURL"),
    "doi": ("DataDescriptionURI", "Data Description URI"),
    "images": ("ImageCount", "Number of Images", "NumberOfImages"),
    "expected_size": ("FileSize", "File Size", "TotalSizeInBytes"),
}
_NUMBERS = ("images", "expected_size")


def normalise(row: Mapping[str, Any]) -> dict[str, Any]:
    """One metadata row under :data:`ALIASES`' names; numbers parsed, blanks as None."""
    out: dict[str, Any] = {}
    for name, headers in ALIASES.items():
        value = next((row[h] for h in headers if row.get(h) not in (None, "")), None)
        if name in _NUMBERS:
            value = _number(value)
        elif value is not None:
            value = str(value).strip() or None
        out[name] = value
    return out


def _number(value: Any) -> int | None:
    try:
        return None if value is None else int(float(str(value).strip()))
    except ValueError:
        return None


__all__ = ["ALIASES", "normalise"]
