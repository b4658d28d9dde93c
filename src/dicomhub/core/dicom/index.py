"""The search columns of an instance, read out of its DICOM JSON header.

Each field is typed and clipped to its database column, and a bad value (an
impossible date, a non-numeric instance number) becomes ``None`` or ``""``
rather than an error: the header JSON keeps what was sent, and
:mod:`dicomhub.core.dicom.validate` decides whether it is acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

JsonHeader = dict[str, Any]


@dataclass(frozen=True)
class IndexRecord:
    """What search, faceting and placement need from one instance."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    patient_name: str
    patient_sex: str
    patient_age: str
    ethnic_group: str
    study_date: date | None
    study_time: str
    study_description: str
    study_id: str
    accession_number: str
    series_date: date | None
    series_number: int | None
    series_description: str
    protocol_name: str
    modality: str
    body_part_examined: str
    manufacturer: str
    manufacturer_model_name: str
    software_versions: str
    frame_of_reference_uid: str
    instance_number: int | None
    content_date: date | None
    acquisition_date: date | None


def first(header: JsonHeader, tag: str) -> Any:
    """The first value of ``tag`` (8 hex digits), or None."""
    element = header.get(tag)
    if not element:
        return None
    values = element.get("Value")
    if not values:
        return None
    return values[0]


def text(header: JsonHeader, tag: str, length: int = 64) -> str:
    """All values of a string element joined with a backslash, clipped to ``length``."""
    element = header.get(tag)
    values = element.get("Value") if element else None
    if not values:
        return ""
    parts = []
    for value in values:
        if isinstance(value, dict):
            value = value.get("Alphabetic", "")
        parts.append("" if value is None else str(value))
    return "\\".join(parts)[:length]


def integer(header: JsonHeader, tag: str) -> int | None:
    """An IS/US/... value as an int (None if absent or not an integer that fits 32 bits)."""
    value = first(header, tag)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if -(2**31) <= number < 2**31 else None


def parse_date(value: Any) -> date | None:
    """A DA value (``YYYYMMDD``, or the old ``YYYY.MM.DD``) as a date, else None."""
    if not isinstance(value, str):
        return None
    digits = value.strip().replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def index_record(header: JsonHeader, transfer_syntax_uid: str) -> IndexRecord:
    """Extract the search columns of one instance from its DICOM JSON header."""
    return IndexRecord(
        sop_class_uid=text(header, "00080016"),
        sop_instance_uid=text(header, "00080018"),
        study_instance_uid=text(header, "0020000D"),
        series_instance_uid=text(header, "0020000E"),
        transfer_syntax_uid=transfer_syntax_uid[:64],
        patient_id=text(header, "00100020"),
        patient_name=text(header, "00100010", 324),
        patient_sex=text(header, "00100040", 16),
        patient_age=text(header, "00101010", 8),
        ethnic_group=text(header, "00102160"),
        study_date=parse_date(first(header, "00080020")),
        study_time=text(header, "00080030", 32),
        study_description=text(header, "00081030", 256),
        study_id=text(header, "00200010", 32),
        accession_number=text(header, "00080050"),
        series_date=parse_date(first(header, "00080021")),
        series_number=integer(header, "00200011"),
        series_description=text(header, "0008103E", 256),
        protocol_name=text(header, "00181030", 256),
        modality=text(header, "00080060", 16),
        body_part_examined=text(header, "00180015"),
        manufacturer=text(header, "00080070", 128),
        manufacturer_model_name=text(header, "00081090", 128),
        software_versions=text(header, "00181020", 256),
        frame_of_reference_uid=text(header, "00200052"),
        instance_number=integer(header, "00200013"),
        content_date=parse_date(first(header, "00080023")),
        acquisition_date=parse_date(first(header, "00080022")),
    )
