"""Compile Table E.1-1 plus a recipe into a tag → action plan the engine looks up by int.

The table's codes are resolved once per recipe (options overlaid on the Basic column,
compound codes resolved, explicit keep/remove applied), so the per-element work in the
engine is one dict lookup. Actions are small ints for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, keyword_dict, keyword_for_tag

from dicomhub.core.deid import _annex_e, _private_tags
from dicomhub.core.deid._rows import AnnexRow
from dicomhub.core.deid.recipe import Recipe
from dicomhub.core.deid.uids import is_class_keyword

# Actions (ints: compared in the hot loop).
KEEP = 0
REMOVE = 1
EMPTY = 2
DUMMY = 3
UID = 4
RECURSE = 5
SHIFT_DA = 6
SHIFT_DT = 7
CLEAN_TEXT = 8
PATIENT_ID = 9
PATIENT_NAME = 10
AGE = 11

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
PRIVATE_ROW = "(GGGG,EEEE) WHERE GGGG IS ODD"
PATIENT_ID_TAG = 0x00100020
PATIENT_NAME_TAG = 0x00100010
OVERLAY_DATA = 0x3000

COMPOUND = {
    "conformant": {"X/Z": "Z", "Z/D": "D", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U"},
    "minimal": {"X/Z": "X", "Z/D": "Z", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "X"},
}
_TAG_RE = re.compile(r"^\(?([0-9A-Fa-fXx]{4}),?([0-9A-Fa-fXx]{4})\)?$")


def effective_code(row: AnnexRow, columns: frozenset[str]) -> str:
    """The row's code after overlaying the enabled options (C wins over K, K over Basic).

    C wins because when two options disagree (e.g. a device date under Retain Device
    Identity *and* Modified Dates) the one that still changes the value is the safe one.
    """
    codes = {code for column, code in row.options if column in columns}
    if "C" in codes:
        return "C"
    if "K" in codes:
        return "K"
    return row.basic


def parse_tag(text: str) -> tuple[int, int]:
    """Parse a keyword, ``ggggeeee``, ``(gggg,eeee)`` or pattern into (value, mask)."""
    if text in keyword_dict:
        return keyword_dict[text], 0xFFFFFFFF
    match = _TAG_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not a DICOM keyword or tag: {text!r}")
    hexed = (match.group(1) + match.group(2)).upper()
    mask = int("".join("0" if c == "X" else "F" for c in hexed), 16)
    return int(hexed.replace("X", "0"), 16), mask


def parse_private(text: str) -> tuple[int, str, int]:
    """Parse ``gggg,CREATOR,ee`` (element block-relative) into a private key."""
    group, creator, element = (part.strip() for part in text.split(",", 2)[:3])
    element = element.lower().removeprefix("xx")
    key = (int(group, 16), creator, int(element, 16))
    if not key[0] % 2 or not 0 <= key[2] <= 0xFF:
        raise ValueError(f"not a private attribute: {text!r}")
    return key


def dict_vr(tag: int) -> str | None:
    """The data dictionary VR (first of an ambiguous pair), or None when unknown."""
    try:
        return dictionary_VR(tag).split(" ", 1)[0]
    except KeyError:
        return None


@dataclass
class Plan:
    """A recipe compiled against the table: everything the engine looks up per element."""

    recipe: Recipe
    codes: dict[int, str] = field(default_factory=dict)
    patterns: list[tuple[int, int, str]] = field(default_factory=list)
    overrides: list[tuple[int, int, int]] = field(default_factory=list)
    #: (group, creator, element low byte) -> (disposition, knowledge-base VR or "").
    private_keep: dict[tuple[int, str, int], tuple[str, str]] = field(default_factory=dict)
    private_code: str = "X"
    cache: dict[int, int] = field(default_factory=dict)
    dates: str = "remove"  # remove | keep | shift

    def action(self, tag: int, vr: str | None) -> int:
        """Action for public attribute ``tag`` (cached; ``vr`` is used if not in the dictionary)."""
        act = self.cache.get(tag)
        if act is None:
            act = self.cache[tag] = self._classify(tag, vr)
        return act

    def _classify(self, tag: int, vr: str | None) -> int:
        if tag >> 16 in (0x0002, 0xFFFE):
            # File meta elements and item delimiters have no place in a dataset's body
            # (a damaged or odd file); the file meta is rebuilt on its own.
            return REMOVE
        known_vr = dict_vr(tag) or vr or "UN"
        for value, mask, act in self.overrides:
            if tag & mask == value:
                return RECURSE if act == KEEP and known_vr == "SQ" else act
        code = self.codes.get(tag)
        if code is None:
            code = self._pattern_code(tag)
        if code is not None:
            return self.code_action(code, known_vr)
        return self._unlisted(tag, known_vr)

    def _pattern_code(self, tag: int) -> str | None:
        group = tag >> 16
        if group & 0xFF00 == 0x6000 and tag & 0xFFFF != OVERLAY_DATA:
            # An overlay whose data is removed must go as a whole group.
            data = self._classify((tag & 0xFFFF0000) | OVERLAY_DATA, "OW")
            if data == REMOVE:
                return "X"
        for value, mask, code in self.patterns:
            if tag & mask == value:
                # Curves cannot be cleaned (binary data): Clean Graphics still removes them.
                return "X" if code == "C" and group & 0xFF00 == 0x5000 else code
        return None

    def code_action(self, code: str, vr: str) -> int:
        """Turn a resolved table code into an action for an element of ``vr``."""
        code = COMPOUND[self.recipe.compound].get(code, code)
        if code == "X":
            return REMOVE
        if code == "Z":
            return EMPTY
        if code == "D":
            return UID if vr == "UI" else DUMMY
        if code in ("U", "K"):
            if vr == "SQ":
                return RECURSE
            if vr == "AS":
                return AGE
            return UID if code == "U" and vr == "UI" else KEEP
        return self._clean_action(vr)

    def _clean_action(self, vr: str) -> int:
        if vr == "SQ":
            return RECURSE
        if vr in ("DA", "DT", "TM"):
            return self.date_action(vr)
        if vr == "UI":
            return UID
        if vr in TEXT_VRS:
            return CLEAN_TEXT
        if vr == "AS":
            return AGE
        return REMOVE  # binary content (overlay bitmaps, curves) cannot be cleaned

    def date_action(self, vr: str) -> int:
        """DA/DT/TM under the recipe's date policy (TM is kept whenever dates are)."""
        if self.dates == "remove":
            return REMOVE
        if vr == "TM":
            return KEEP if self.dates == "keep" or self.recipe.keep_times else EMPTY
        if self.dates == "keep":
            return KEEP
        return SHIFT_DA if vr == "DA" else SHIFT_DT

    def _unlisted(self, tag: int, vr: str) -> int:
        """Safe default for a public attribute Table E.1-1 does not list."""
        if tag & 0xFFFF == 0:  # group length: recomputed or dropped on write
            return REMOVE
        if vr == "SQ":
            return RECURSE
        keyword = keyword_for_tag(tag)
        if vr == "UI":
            if is_class_keyword(keyword) or self.recipe.retain_uids:
                return KEEP
            return UID
        if vr in ("DA", "DT", "TM"):
            return self.date_action(vr)
        if keyword in self.recipe.keep_text or vr in self.recipe.keep_vrs:
            return KEEP
        return REMOVE


def compile_plan(recipe: Recipe, *, map_patients: bool) -> Plan:
    """Resolve Table E.1-1 and the recipe into a :class:`Plan`."""
    columns = frozenset(opt.column for opt in recipe.options())
    plan = Plan(recipe=recipe)
    if recipe.retain_long_modified_dates:
        plan.dates = "shift"
    elif recipe.retain_long_full_dates:
        plan.dates = "keep"
    for row in _annex_e.ROWS:
        code = effective_code(row, columns)
        if row.tag == PRIVATE_ROW:
            plan.private_code = code
            continue
        value, mask = parse_tag(row.tag)
        if mask == 0xFFFFFFFF:
            plan.codes[value] = code
        else:
            plan.patterns.append((value, mask, code))
    for text in recipe.remove:
        plan.overrides.append((*parse_tag(text), REMOVE))
    for text in recipe.keep:
        plan.overrides.append((*parse_tag(text), KEEP))
    if map_patients:
        plan.cache[PATIENT_ID_TAG] = PATIENT_ID
        plan.cache[PATIENT_NAME_TAG] = PATIENT_NAME
    if plan.private_code == "C":
        for prow in _private_tags.ROWS:
            if prow.in_e3101 or recipe.safe_private_source == "tcia_kb":
                key = (prow.group, prow.creator, prow.element)
                plan.private_keep[key] = (prow.disposition, prow.vr)
    for text in recipe.keep_private:
        plan.private_keep[parse_private(text)] = ("keep", "")
    # Warm the cache for every listed tag so the hot loop rarely classifies.
    for tag in plan.codes:
        if dict_vr(tag) is not None:
            plan.action(tag, None)
    for tag in [tag for tag in plan.cache if tag >> 16 == 0x0002]:
        plan.cache[tag] = REMOVE
    return plan


def private_action(plan: Plan, disposition: str, vr: str) -> int:
    """Action for a private attribute the recipe keeps, by its knowledge-base disposition."""
    if disposition == "hash_uid":
        return KEEP if plan.recipe.retain_uids else UID
    if disposition == "shift_date":
        return plan.date_action(vr) if vr in ("DA", "DT", "TM") else REMOVE
    if vr == "UI":  # a kept private UID is an instance UID like any other
        return KEEP if plan.recipe.retain_uids else UID
    if vr in ("DA", "DT", "TM"):  # so is a kept private date
        return plan.date_action(vr)
    if vr == "PN":  # a person's name is never safe, whoever's block holds it
        return REMOVE
    return RECURSE if vr == "SQ" else KEEP
