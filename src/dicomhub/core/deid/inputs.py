"""Reading odd input: VRs pydicom cannot write or process, and text in any character set.

Real sites' files break the rules in ways the plan's actions do not expect: implicit VR
data under an explicit VR transfer syntax, garbled or missing VRs, a known attribute
written with another VR, ISO 2022 names that look like ASCII. These helpers make such
elements fit the engine's actions, or tell it to remove them; they never guess a value.
"""

from __future__ import annotations

import re
import warnings

from pydicom.charset import decode_bytes
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dicomhub.core.deid.table import dict_vr

#: Every VR pydicom can write (an element read with any other cannot be kept as it is).
VALID_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
     "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
     "UR", "US", "UT", "UV"}
)  # fmt: skip
#: VRs whose values are character strings: a known attribute written with one of them
#: where the dictionary says another is read as the dictionary's VR and processed.
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
     "UI", "UR", "UT"}
)  # fmt: skip
_BINARY = frozenset({"OB", "OW", "UN"})


def needs_repair(elem: DataElement | RawDataElement) -> bool:
    """True for a kept element pydicom could not write back as it was read."""
    return elem.VR not in VALID_VRS and (
        elem.VR is not None or (isinstance(elem, RawDataElement) and not elem.is_implicit_VR)
    )


def repair(ds: Dataset, tag: BaseTag) -> bool:
    """Give a raw element without a valid VR the dictionary's; False if it had to go.

    pydicom cannot write an element whose VR is missing or garbled (a damaged explicit VR
    file), so the file would be refused at writing for one harmless attribute. Elements
    built in memory may carry an ambiguous VR such as "OB or OW", which pydicom resolves
    on writing, so they are left alone.
    """
    if not isinstance(ds._dict[tag], RawDataElement):
        return True
    try:
        elem: DataElement | None = ds[tag]
    except Exception:
        elem = None
    if elem is None or elem.VR not in VALID_VRS:
        del ds._dict[tag]
        return False
    return True


def fit_vr(elem: DataElement, *, emptying: bool) -> str | None:
    """Make a known attribute written with the wrong VR fit the plan's action.

    The action assumes the dictionary VR. A string written under another string VR is
    read as the dictionary's. Returns None when the element now fits, else the VR that
    was due (a binary or sequence value where text is expected, or the reverse: the
    caller removes it).
    """
    expected = dict_vr(int(elem.tag))
    if expected is None or expected == elem.VR or emptying:
        return None
    if elem.VR in STRING_VRS and expected in STRING_VRS:
        elem.VR = expected
        return None
    if elem.VR in _BINARY and expected in _BINARY:
        return None
    return expected


def implicit_in_explicit(ds: Dataset) -> bool:
    """True when pydicom read implicit VR elements under an explicit VR transfer syntax.

    Such a file cannot be written back as it is (its elements have no VR), so its
    elements are decoded with dictionary VRs first (:func:`decode_all`).
    """
    implicit, _ = ds.original_encoding
    if implicit is not False:
        return False
    first = next(iter(ds._dict.values()), None)
    return isinstance(first, RawDataElement) and first.is_implicit_VR


def decode_all(ds: Dataset) -> None:
    """Convert every element of ``ds``, at every depth, from its raw form."""
    for tag in list(ds._dict):
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                decode_all(item)


def warning_reason(warning: warnings.WarningMessage) -> str:
    """A warning as an issue, cut before the first quoted or listed value (it may be PHI)."""
    text = re.split(r"['\"]|: ", str(warning.message), maxsplit=1)[0]
    return f"{warning.category.__name__}: {text[:120]}"


def text_of(elem: DataElement | None) -> str:
    """A value as text; bytes (a PatientID written as OB or UN) decoded, not repr'd."""
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value).strip()


def decode(ds: Dataset, value: bytes) -> str:
    """Text in the dataset's character set (ISO 2022 is 7-bit: its escapes need decoding)."""
    if value.isascii() and b"\x1b" not in value:
        return value.decode("ascii")
    try:
        return decode_bytes(value, ds._character_set, {0x5C, 0x3D, 0x5E})
    except Exception:
        return value.decode("latin-1")


def creator_of(value: object) -> str:
    """A private creator's value as text, raw or decoded."""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value).strip() if value is not None else ""
