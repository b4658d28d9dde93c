"""Check a header against PS3.5 6.2 value representation rules and intake's required attributes.

Every problem found is a :class:`Violation` with a stable ``code`` so the
quarantine, the API and the tests agree on what went wrong.  The checks work on
the raw bytes of each element (pydicom's unconverted values), so checking costs
a regular expression per value and never fails on the value it is checking.

Private elements are not checked: their VRs are the vendor's business and are
usually only known as UN.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

#: Stable codes of the individual checks.
VR_TOO_LONG = "vr_too_long"
VR_BAD_CHARS = "vr_bad_chars"
VR_NOT_A_NUMBER = "vr_not_a_number"
VR_NEGATIVE = "vr_negative"
VR_BAD_VALUE = "vr_bad_value"
MISSING_REQUIRED = "missing_required"

#: Attributes without which an instance cannot be placed in the archive.
REQUIRED = (
    (0x00080016, "SOPClassUID"),
    (0x00080018, "SOPInstanceUID"),
    (0x0020000D, "StudyInstanceUID"),
    (0x0020000E, "SeriesInstanceUID"),
    (0x00100020, "PatientID"),
    (0x00080060, "Modality"),
)

#: Numeric attributes whose values can never be negative.
NON_NEGATIVE = frozenset(
    {
        0x00180050,  # SliceThickness
        0x00180060,  # KVP
        0x00180080,  # RepetitionTime
        0x00180081,  # EchoTime
        0x00180088,  # SpacingBetweenSlices
        0x00180091,  # EchoTrainLength
        0x00181150,  # ExposureTime
        0x00181151,  # XRayTubeCurrent
        0x00181152,  # Exposure
        0x00181164,  # ImagerPixelSpacing
        0x00181314,  # FlipAngle
        0x00101020,  # PatientSize
        0x00101030,  # PatientWeight
        0x00280008,  # NumberOfFrames
        0x00280030,  # PixelSpacing
    }
)

_MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}  # fmt: skip
_PATTERN = {
    "AE": re.compile(r"[^\\\x00-\x1f\x7f]*"),
    "AS": re.compile(r"\d{3}[DWMY]"),
    "CS": re.compile(r"[A-Z0-9 _]*"),
    "DA": re.compile(r"\d{8}"),
    "DS": re.compile(r" *[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? *"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
    "IS": re.compile(r" *[+-]?\d+ *"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "UI": re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*"),
}
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\\]")
_STRING_VRS = frozenset(_MAX_LENGTH) | {"UC", "UR", "UT"}
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Violation:
    """One problem: a stable ``code``, where (dotted tag path), and a human ``detail``."""

    code: str
    path: str
    keyword: str
    vr: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "path": self.path,
            "keyword": self.keyword,
            "vr": self.vr,
            "detail": self.detail,
        }


def missing_required(ds: Dataset) -> list[Violation]:
    """The required attributes that are absent or empty."""
    problems = []
    for tag, keyword in REQUIRED:
        elem = ds._dict.get(BaseTag(tag))
        value = getattr(elem, "value", None)
        if isinstance(value, bytes):
            value = value.strip(b" \x00")
        if not value:
            problems.append(
                Violation(MISSING_REQUIRED, f"{tag:08X}", keyword, "", f"{keyword} is missing")
            )
    return problems


def vr_violations(ds: Dataset, limit: int = 50) -> list[Violation]:
    """Every VR rule broken by a standard element (sequences included), up to ``limit``."""
    found = []
    for violation in _walk(ds, ""):
        found.append(violation)
        if len(found) >= limit:
            break
    return found


def _walk(ds: Dataset, path: str) -> Iterator[Violation]:
    for tag, elem in list(ds._dict.items()):
        where = f"{path}.{tag:08X}" if path else f"{tag:08X}"
        if isinstance(elem, DataElement) and elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                yield from _walk(item, f"{where}.{index}")
            continue
        if tag.is_private or tag.element == 0 or not isinstance(elem, RawDataElement):
            continue
        vr = elem.VR or _dictionary_vr(tag)
        if vr in _STRING_VRS and elem.value:
            yield from _check_value(tag, str(vr), elem.value, where)


def _dictionary_vr(tag: BaseTag) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _check_value(tag: BaseTag, vr: str, raw: bytes, where: str) -> Iterator[Violation]:
    keyword = keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
    text = raw.decode("latin-1")
    if vr in ("LT", "ST", "UT"):
        values = [text.rstrip("\x00 ")]
    elif vr == "UR":
        values = [text.rstrip()]
    else:
        values = text.rstrip("\x00 ").split("\\")
    for value in values:
        problem = _check_one(tag, vr, value)
        if problem is not None:
            code, detail = problem
            yield Violation(code, where, keyword, vr, f"{keyword} ({vr}) {detail}")


def _check_one(tag: BaseTag, vr: str, value: str) -> tuple[str, str] | None:
    stripped = value.strip(" \x00") if vr not in ("LT", "ST", "UT", "UC", "UR") else value
    if not stripped:
        return None
    if vr == "PN":
        if any(len(group) > 64 for group in stripped.split("=")):
            return VR_TOO_LONG, f"has a name group longer than 64 characters: {value[:80]!r}"
        return _text_chars(value, _LINE_CONTROL)
    limit = _MAX_LENGTH.get(vr)
    if limit is not None and len(stripped) > limit:
        return VR_TOO_LONG, f"is {len(stripped)} characters, at most {limit}: {value[:80]!r}"
    if vr in ("IS", "DS"):
        return _check_number(tag, vr, stripped)
    pattern = _PATTERN.get(vr)
    if pattern is not None:
        if not pattern.fullmatch(stripped):
            return VR_BAD_CHARS, f"has characters or a form its VR does not allow: {value[:80]!r}"
        if vr == "DA":
            return _check_date(stripped)
        return None
    if vr in ("LO", "SH", "UC"):
        return _text_chars(value, _LINE_CONTROL)
    return _text_chars(value, _TEXT_CONTROL)


def _text_chars(value: str, control: re.Pattern[str]) -> tuple[str, str] | None:
    if control.search(value):
        return VR_BAD_CHARS, f"contains control characters: {value[:80]!r}"
    return None


def _check_number(tag: BaseTag, vr: str, value: str) -> tuple[str, str] | None:
    if not _PATTERN[vr].fullmatch(value):
        return VR_NOT_A_NUMBER, f"is not a number: {value[:80]!r}"
    number: Any = int(value) if vr == "IS" else float(value)
    if vr == "IS" and not _INT32[0] <= number <= _INT32[1]:
        return VR_BAD_VALUE, f"is outside the 32-bit range: {value!r}"
    if number < 0 and int(tag) in NON_NEGATIVE:
        return VR_NEGATIVE, f"is negative but can only be zero or more: {value!r}"
    return None


def _check_date(value: str) -> tuple[str, str] | None:
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return VR_BAD_VALUE, f"is not a calendar date: {value!r}"
    return None
