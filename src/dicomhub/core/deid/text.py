"""Dummy values (action D) and free-text cleaning (action C on descriptors).

Cleaning cannot understand prose; it removes what a machine can recognise as identifying:
dates in the common written forms, the patient's own name parts and identifiers (collected
from the instance before it is changed), and long digit runs that look like record numbers.
What is left is kept; an attribute left blank by cleaning becomes zero length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.sequence import Sequence

_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
DATE_PATTERNS = re.compile(
    r"(?<![\d.])\b(?:"  # never from the middle of a number such as "0.6"
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # 2020-01-15, 2020/1/15, 2020.01.15
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"  # 15.01.2020, 01/15/2020, 1-15-20
    r"|(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # 20200115
    rf"|\d{{1,2}}\s*(?:{_MONTHS})\.?,?\s*\d{{2,4}}"  # 15 Jan 2020
    rf"|(?:{_MONTHS})\.?\s*\d{{1,2}}(?:st|nd|rd|th)?,?\s*\d{{2,4}}"  # January 15, 2020
    rf"|(?:{_MONTHS})\.?\s+(?:19|20)\d{{2}}"  # Jan 2020
    r")\b",
    re.IGNORECASE,
)
#: Record numbers: a run of five or more digits with any letters or separators glued to it
#: ("MRN12345", "ACC-0012345", "12345678X"), and telephone numbers.
#: A UID (or a UID's start) embedded in text: 1.2.840.113619.2.55, removed before dates
#: (whose patterns would take "1.2.840" for one).
UID_PATTERN = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}\.?(?![\w])")
ID_PATTERNS = re.compile(
    r"[A-Za-z#:/-]*\d{5,}[A-Za-z0-9#/-]*"
    r"|\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b"
    r"|\b(?:MRN|Acc(?:ession)?|Pat(?:ient)?\s*ID|Subj(?:ect)?\s*ID)\s*(?:#|No\.?|:)?\s*"
    r"[A-Za-z]*\d[\w-]*",
    re.IGNORECASE,
)
#: Names the header does not give but free text shows as names: a DICOM person name
#: ("Roe^Richard", a caret never occurs in clinical wording) and a title before
#: capitalised words ("Dr. Roe", "Mrs Jane Roe"). Upper-case titles count only with
#: their dot: "DR CHEST PA" is digital radiography, "MR BRAIN" a modality.
NAME_PATTERNS = re.compile(
    r"[^\s,;:()\[\]]*\^[^\s,;:()\[\]]*"
    r"|\b(?:Dr|Mr|Mrs|Ms|Miss|Prof)\.?\s*(?:[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?|[A-Z][A-Z'-]+)"
    r"|\b(?:DR|MR|MRS|MS|PROF)\.\s*[A-Z][\w'-]+"  # in capitals the surname ends the match
)
#: What removal leaves behind: brackets with nothing in them, separators at the ends.
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]|\{\s*\}|<\s*>")
_REPEATED_SEPARATORS = re.compile(r"\s*([,;])(?:\s*[,;])+\s*")
_EDGE_SEPARATORS = re.compile(r"^[\s,;:/#-]+|[\s,;:/#-]+$")

#: D (dummy) values by VR; UI is hashed and SQ becomes one empty item elsewhere.
DUMMIES: dict[str, object] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UR": "ANONYMIZED",
    "DS": "0",
    "IS": "0",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "OW": b"\x00\x00",
    "UN": b"\x00\x00",
}


def dummy_for(vr: str) -> object:
    """A non-empty, VR-conformant, meaningless value."""
    if vr == "SQ":
        return Sequence([])  # the engine adds one empty item
    return DUMMIES.get(vr, "ANONYMIZED")


def _long_enough(token: str) -> bool:
    """Three letters for Latin names; two for others (most CJK given and family names)."""
    return len(token) >= (3 if token.isascii() else 2)


def _bounded(token: str) -> str:
    """A name as a regex: whole words in Latin text; anywhere in scripts without spaces.

    Japanese or Chinese text does not separate words, so "山田" must match inside
    "患者山田太郎"; word boundaries would never fire there.
    """
    escaped = re.escape(token)
    if token.isascii():
        return rf"\b{escaped}\b"
    head = r"\b" if token[0].isascii() or (token[0].isalpha() and token[0] < "\u0800") else ""
    tail = r"\b" if token[-1].isascii() or (token[-1].isalpha() and token[-1] < "\u0800") else ""
    return head + escaped + tail


class TextCleaner:
    """Removes dates, known identifiers and record or phone numbers from free text.

    It cleans rather than blanks: "CT CHEST W/O CONTRAST" carries nothing identifying and
    stays, "CT CHEST 2020-01-15 (Doe)" becomes "CT CHEST". ``identifiers`` are values read
    from the instance's own header (names, IDs, the institution) before it is changed.
    """

    __slots__ = ("_known",)

    def __init__(self, identifiers: Iterable[str]) -> None:
        values = [value.strip() for value in identifiers]
        words = {t for value in values for t in re.split(r"[\^\s,=]+", value) if _long_enough(t)}
        # Whole values first (longest match wins), so "Doe^John" goes with its separator.
        whole = {value for value in values if _long_enough(value)}
        tokens = sorted(words | whole, key=len, reverse=True)
        self._known = re.compile("|".join(map(_bounded, tokens)), re.IGNORECASE) if tokens else None

    def __call__(self, text: str) -> str:
        """``text`` with every recognised identifier removed (whitespace tidied)."""
        out = DATE_PATTERNS.sub("", UID_PATTERN.sub("", text))
        if self._known is not None:
            out = self._known.sub("", out)
        out = NAME_PATTERNS.sub("", out)
        out = ID_PATTERNS.sub("", out)
        out = _EMPTY_BRACKETS.sub("", out)
        out = _REPEATED_SEPARATORS.sub(r"\1 ", out)
        out = re.sub(r"[ \t]{2,}", " ", out)
        return _EDGE_SEPARATORS.sub("", out)
