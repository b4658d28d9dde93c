"""A leak checker: what of an original instance must not survive, and where it did.

Used by the corpus sweep and the nasty-input tests. It reads the *original* instance
(decoded, every depth, file meta and private blocks included) and gathers the values
the recipe promises to remove or replace: every person name, every date (unless dates
are retained), every instance UID (unless UIDs are retained), AE titles, the identifying
attributes (PatientName, PatientID, institution, accession ...) and the values of every
attribute whose resolved action is X, Z, D or U. It then scans every value of the
output, at every depth, for any of them as a substring (case-insensitive), so a UID or
name embedded in other text counts too.

Structural checks come with it: no curve or overlay group survives, no private
attribute outside the recipe's keep list, the file meta holds only what it may and its
MediaStorageSOPInstanceUID is the output's SOPInstanceUID.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicomhub.core.deid import Deidentifier
from dicomhub.core.deid import table as t
from dicomhub.core.deid.provenance import PRIVATE_CREATOR
from dicomhub.core.deid.uids import is_class_keyword, is_well_known

BULK_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009, 0x00420011})
#: Identifying attributes whose values must be gone from every text of the output.
IDENTIFYING = (
    "PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress", "ReferringPhysicianName",
    "OperatorsName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
)  # fmt: skip
INSTITUTION = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName")
FILE_META_ALLOWED = frozenset(
    {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}
)
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT", "DA", "DT"})
_GENERIC = frozenset({"ANONYMIZED", "ANONYMOUS", "UNKNOWN", "NONE", "YES", "NO"})


@dataclass
class Secrets:
    """What must not survive: value -> (where it came from, how strong a secret it is).

    *Strong* secrets (names, identifiers, dates, UIDs, AE titles) must be gone from every
    text of the output. *Weak* ones (the values of removed free-text and private
    attributes) may legitimately equal what a kept attribute says ("SCOUT" as a removed
    description and as the kept ScanOptions), so they count only where no kept value
    contains them, and never when they are bare numbers.
    """

    values: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: Full values of attributes the recipe keeps.
    kept: set[str] = field(default_factory=set)
    #: Dates the recipe keeps (Full Dates): a removed birth date may equal a study date.
    kept_dates: set[str] = field(default_factory=set)

    def add(self, value: str, where: str, *, minimum: int = 4, strong: bool = True) -> None:
        # A long text that survived whole survives in its first 64 characters too.
        value = value.strip().strip("\x00").strip()[:64].strip()
        if len(value) < minimum or value.upper() in _GENERIC:
            return
        if not strong and re.fullmatch(r"[\d.\s+-]*", value):
            return
        old = self.values.get(value)
        if old is None or (strong and not old[1]):
            self.values[value] = (where, strong)

    def pattern(self) -> re.Pattern[str] | None:
        """One regex finding every secret at every position (a trie: thousands stay fast)."""
        kept = "\x01".join(self.kept).lower()
        live = [
            v.lower()
            for v, (_, strong) in self.values.items()
            if (strong or v.lower() not in kept) and v not in self.kept_dates
        ]
        if not live:
            return None
        return re.compile(f"(?=({_trie(live)}))", re.IGNORECASE)

    def found(self, pattern: re.Pattern[str], text: str) -> Iterator[str]:
        """Secrets in ``text`` that stand alone: not inside a longer number, UID or word."""
        for match in pattern.finditer(text):
            secret = match.group(1)
            start, end = match.start(1), match.end(1)
            before = text[start - 1] if start else ""
            after = text[end : end + 2]
            if secret[0].isdigit() and (before.isdigit() or before == "."):
                continue
            if secret[-1].isdigit() and (after[:1].isdigit() or re.match(r"\.\d", after)):
                continue
            if _worded(secret[0]) and before.isalpha():
                continue
            if _worded(secret[-1]) and after[:1].isalpha():
                continue
            yield secret


def _worded(char: str) -> bool:
    """True for letters of scripts that separate words (not CJK, where a name sits inside)."""
    return char.isalpha() and char < "\u0800"


def _trie(words: list[str]) -> str:
    """A regex matching any of ``words``, shaped as a trie (greedy: longest first)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _branch(root)


def _branch(node: dict[str, Any]) -> str:
    alternatives = [re.escape(c) + _branch(child) for c, child in sorted(node.items()) if c]
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"(?:{body})?" if "" in node else body


def _texts(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None or elem.VR == "SQ":
        return []
    if isinstance(value, bytes):
        if len(value) > 65536 or int(elem.tag) in BULK_TAGS:
            return []
        return [value.decode("latin-1")]
    if isinstance(value, list | MultiValue | tuple):
        return [str(v) for v in value]
    if isinstance(value, PersonName | str):
        return [str(value)]
    return []


def _elements(ds: Dataset, path: str = "") -> Iterator[tuple[str, Dataset, DataElement]]:
    """Every element at every depth with its path (sequences before their items)."""
    for elem in ds:
        where = f"{path}({int(elem.tag):08X})"
        yield where, ds, elem
        if elem.VR == "SQ" and elem.value:
            for i, child in enumerate(elem.value):
                yield from _elements(child, f"{where}[{i}]")


def secrets_of(original: Dataset, engine: Deidentifier) -> Secrets:
    """Gather what the recipe promises must not reach the output of ``original``."""
    plan = engine.plan
    recipe = engine.recipe
    out = Secrets()
    for keyword in IDENTIFYING:
        elem = original.get(keyword)
        if elem is not None:
            for text in _texts(original[keyword]):
                _add_name(out, text, keyword)
    if not recipe.retain_institution_identity:
        for keyword in INSTITUTION:
            if keyword in original:
                for text in _texts(original[keyword]):
                    out.add(text, keyword, minimum=5)
    meta = getattr(original, "file_meta", None)
    for elem in meta or []:
        if int(elem.tag) not in FILE_META_ALLOWED:
            for text in _texts(elem):
                out.add(text, f"file meta ({int(elem.tag):08X})", minimum=4, strong=False)
    for where, parent, elem in _elements(original):
        if int(elem.tag) >> 16 & 1 and _private_kept(parent, int(elem.tag), plan):
            continue  # the recipe keeps it by name: a curator's decision, judged elsewhere
        _classify(out, plan, where, elem)
    return out


def _add_name(out: Secrets, text: str, where: str) -> None:
    out.add(text, where)
    for part in re.split(r"[\^=\\]+", text):
        out.add(part, where, minimum=3 if part.isascii() else 2)


def _classify(out: Secrets, plan: t.Plan, where: str, elem: DataElement) -> None:
    tag = int(elem.tag)
    vr = elem.VR
    if vr == "SQ":
        return
    recipe = plan.recipe
    if tag >> 16 & 1:  # private: judged by the structural check
        if elem.tag.element >= 0x1000 and vr in TEXT_VRS | {"UN"}:
            for text in _texts(elem):
                if re.search(r"[A-Za-z]{3}", text) or vr in ("PN", "DA", "DT"):
                    out.add(text, f"private {where}", minimum=6, strong=False)
        return
    act = plan.action(tag, vr)
    texts = _texts(elem)
    if act == t.KEEP and vr not in ("PN", "UI", "DA", "DT"):
        out.kept.update(s.strip() for s in texts)
        return
    for text in texts:
        if vr == "PN":
            if act != t.KEEP:
                _add_name(out, text, f"PN {where}")
        elif vr in ("DA", "DT"):
            if plan.dates == "keep" or act == t.KEEP:
                out.kept_dates.update(v.strip()[:8] for v in text.split("\\"))
            else:
                for value in text.split("\\"):
                    if len(value.strip()) >= 8:
                        out.add(value.strip()[:8], f"date {where}", minimum=8)
        elif vr == "UI":
            keyword = elem.keyword or ""
            for value in text.split("\\"):
                value = value.strip("\x00 ")
                if (
                    not recipe.retain_uids
                    and act != t.KEEP
                    and not is_class_keyword(keyword)
                    and not is_well_known(value)
                ):
                    out.add(value, f"UID {where}", minimum=3)
        elif vr == "AE":
            if act in (t.REMOVE, t.EMPTY, t.DUMMY):
                out.add(text, f"AE {where}", minimum=3)
        elif act in (t.REMOVE, t.EMPTY, t.DUMMY) and vr in TEXT_VRS:
            out.add(text, f"{vr} {where}", minimum=5, strong=False)


def leaks(output: Dataset, secrets: Secrets, engine: Deidentifier) -> list[str]:
    """Every place a secret survives in ``output``, as 'path: value (from where)'.

    Coded and defined-term values the recipe keeps (CS, CodeMeaning, Manufacturer ...)
    may coincide with a name ("PERFUSION" as a test patient's name and an ImageType);
    there only UIDs and dates count.
    """
    pattern = secrets.pattern()
    if pattern is None:
        return []
    found: list[str] = []
    meta = getattr(output, "file_meta", None)
    meta_elements = [(f"meta({int(e.tag):08X})", output, e) for e in meta or []]
    coded = set(engine.recipe.keep_text)
    for where, parent, elem in [*_elements(output), *meta_elements]:
        if _is_provenance(parent, int(elem.tag)):
            continue
        lenient = elem.VR == "CS" or elem.keyword in coded
        for text in _texts(elem):
            for secret in secrets.found(pattern, text):
                origin, _ = _origin(secrets, secret)
                if lenient and not origin.startswith(("UID", "date")):
                    continue
                found.append(f"{where}: {secret!r} (from {origin})")
    return found


def _origin(secrets: Secrets, found: str) -> tuple[str, bool]:
    low = found.lower()
    return next((w for v, w in secrets.values.items() if v.lower() == low), ("?", True))


def _is_provenance(parent: Dataset, tag: int) -> bool:
    if tag == 0x00120063:  # the method names the options, e.g. "Retain Patient ..."
        return True
    if tag >> 16 != 0x0013:
        return False
    element = tag & 0xFFFF
    creator_tag = tag if element <= 0xFF else 0x00130000 | element >> 8
    return _value(parent.get(creator_tag)) == PRIVATE_CREATOR


def structure_problems(output: Dataset, engine: Deidentifier) -> list[str]:
    """Curves, overlays, unkept private attributes and file meta that must not survive."""
    problems: list[str] = []
    plan = engine.plan
    for where, parent, elem in _elements(output):
        tag = int(elem.tag)
        group = tag >> 16
        if group & 0xFF00 in (0x5000, 0x6000):
            problems.append(f"{where}: curve/overlay group survives")
        if group & 1 and not _private_kept(parent, tag, plan):
            problems.append(f"{where}: private attribute not on the keep list survives")
    meta = getattr(output, "file_meta", None)
    if meta is not None:
        for elem in meta:
            if int(elem.tag) not in FILE_META_ALLOWED:
                problems.append(f"file meta ({int(elem.tag):08X}) survives")
        sop = output.get("SOPInstanceUID")
        media = meta.get("MediaStorageSOPInstanceUID")
        if sop is not None and media is not None and str(sop) != str(media):
            problems.append("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    if output.get("PatientIdentityRemoved") != "YES":
        problems.append("PatientIdentityRemoved is not YES")
    return problems


def _private_kept(parent: Dataset, tag: int, plan: t.Plan) -> bool:
    element = tag & 0xFFFF
    group = tag >> 16
    if 0x10 <= element <= 0xFF:
        creator = _value(parent.get(tag))
        return creator == PRIVATE_CREATOR or any(
            (group, creator) == key[:2] for key in plan.private_keep
        )
    if element < 0x10:
        return False
    creator = _value(parent.get(group << 16 | element >> 8))
    if creator == PRIVATE_CREATOR:
        return True
    return (group, creator, element & 0xFF) in plan.private_keep


def _value(elem: DataElement | None) -> str:
    if elem is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value).strip()
