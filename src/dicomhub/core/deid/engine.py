"""The de-identification engine: one recursive pass over a dataset, driven by a compiled plan.

The dataset is changed **in place**. A copy would cost a deep copy of every element
(pixel data included) per instance, for nothing: the pipeline reads each file into a
fresh dataset that it owns and writes the result; a caller that needs the original copies
it first. On error (e.g. an unmapped patient) the dataset is left half-changed and must be
discarded; the pipeline quarantines the source file, never this object.

Elements the plan keeps are never converted from their raw form, so pixel data is never
decoded and most of a file costs one dict lookup per element.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from dicomhub.core.deid import table as t
from dicomhub.core.deid.ages import BadAge, cap_age
from dicomhub.core.deid.dates import BadDate, shift_values
from dicomhub.core.deid.errors import DeidError, UndecodableError, UnmappedPatientError
from dicomhub.core.deid.inputs import (
    VALID_VRS,
    creator_of,
    decode,
    decode_all,
    fit_vr,
    implicit_in_explicit,
    needs_repair,
    repair,
    text_of,
    warning_reason,
)
from dicomhub.core.deid.meta import rebuild_file_meta
from dicomhub.core.deid.names import PN_TAGS, identifiers_of
from dicomhub.core.deid.pixels import PixelRule, clean_pixels, matching_rule
from dicomhub.core.deid.provenance import Provenance
from dicomhub.core.deid.recipe import Recipe
from dicomhub.core.deid.text import TextCleaner, dummy_for
from dicomhub.core.deid.uids import UidHasher

LOGGER = logging.getLogger(__name__)

#: original PatientID -> (archive PatientID, archive PatientName or None for the ID).
PatientMap = Mapping[str, tuple[str, str | None]]

RAW_ACTIONS = frozenset(
    {t.EMPTY, t.UID, t.SHIFT_DA, t.SHIFT_DT, t.PATIENT_ID, t.PATIENT_NAME, t.DUMMY, t.AGE}
)


@dataclass(slots=True, frozen=True)
class DeidIssue:
    """Something the engine had to do that a person may want to know about."""

    path: str
    tag: int
    reason: str


@dataclass(slots=True)
class DeidResult:
    """The de-identified dataset (same object as the input) and what the run recorded.

    ``uid_map`` and ``patient`` (old → new) are for the site's local mapping files; they
    hold PHI and are never sent.
    """

    dataset: Dataset
    recipe_hash: str
    uid_map: dict[str, str] = field(default_factory=dict)
    patient: tuple[str, str] | None = None
    issues: list[DeidIssue] = field(default_factory=list)
    #: The Clean Pixel Data rule that blanked this instance's pixels, if one did.
    pixel_rule: str | None = None


class Deidentifier:
    """A recipe compiled once, applied to many instances (reuse it for a whole run).

    Parameters
    ----------
    recipe:
        The kit's recipe.
    patients:
        ID map, original PatientID → (new ID, new name or None to use the new ID). When
        given, every instance must be in it. None leaves PatientID to the table (Z/D),
        which suits re-running the engine over data already pseudonymised.
    """

    def __init__(self, recipe: Recipe, *, patients: PatientMap | None = None) -> None:
        self.recipe = recipe
        self.patients = patients
        self.plan = t.compile_plan(recipe, map_patients=patients is not None)
        self.hasher = UidHasher(recipe.uid_root, recipe.uid_secret.get_secret_value().encode())
        self.recipe_hash = recipe.recipe_hash()
        self._cleaners: dict[tuple[str, ...], TextCleaner] = {}
        self.provenance = Provenance(recipe, self.recipe_hash)
        self.provenance_pixels = Provenance(recipe, self.recipe_hash, pixels_cleaned=True)

    def pixel_rule(self, ds: Dataset) -> PixelRule | None:
        """The recipe's Clean Pixel Data rule for ``ds`` (before it is changed), or None."""
        return matching_rule(ds, self.recipe.clean_pixels)

    def cleaner(self, identifiers: tuple[str, ...]) -> TextCleaner:
        """The text cleaner for one patient's identifiers (cached: a series shares them)."""
        cleaner = self._cleaners.get(identifiers)
        if cleaner is None:
            if len(self._cleaners) > 64:
                self._cleaners.clear()
            cleaner = self._cleaners[identifiers] = TextCleaner(identifiers)
        return cleaner

    def __call__(self, ds: Dataset) -> DeidResult:
        """De-identify ``ds`` in place; raise :class:`UnmappedPatientError` before any change.

        A :class:`PixelCleanError` (pixels a rule matched that cannot be decoded) is raised
        before the header is changed too. Whatever else goes wrong is raised as a
        :class:`DeidError` naming the attribute, never a value; pydicom's warnings about
        the input become issues of the result.
        """
        if threading.current_thread() is not threading.main_thread():
            # catch_warnings swaps process-wide state: in a worker thread (promotion runs
            # the engine in a pool) it could restore another thread's filters, so there
            # pydicom's warnings go wherever the process sends them.
            return self._guarded(ds)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self._guarded(ds)
        for warning in caught:
            result.issues.append(DeidIssue("", 0, warning_reason(warning)))
        return result

    def _guarded(self, ds: Dataset) -> DeidResult:
        """:meth:`_run` with every failure turned into a :class:`DeidError`."""
        try:
            return self._run(ds)
        except DeidError:
            raise
        except RecursionError as exc:
            raise UndecodableError("sequences are nested too deeply to process") from exc
        except Exception as exc:
            raise DeidError(f"cannot de-identify the instance: {type(exc).__name__}") from exc

    def _run(self, ds: Dataset) -> DeidResult:
        run = _Run(self, ds)
        rule = self.pixel_rule(ds)
        if rule is not None:
            clean_pixels(ds, rule)
            run.result.pixel_rule = rule.label()
        if implicit_in_explicit(ds):
            decode_all(ds)
            run.result.issues.append(DeidIssue("", 0, "implicit VR data under explicit VR"))
        run.walk(ds, "", top=True)
        run.clean_pending()
        rebuild_file_meta(ds)
        (self.provenance if rule is None else self.provenance_pixels).stamp(ds)
        return run.result


@lru_cache(maxsize=8)
def _shared(recipe: Recipe) -> Deidentifier:
    return Deidentifier(recipe)


def deidentify(ds: Dataset, recipe: Recipe, *, patients: PatientMap | None = None) -> DeidResult:
    """De-identify ``ds`` in place under ``recipe``.

    Convenience over :class:`Deidentifier`; without an ID map the compiled plan is cached
    per recipe. Prefer one ``Deidentifier`` per run when mapping patients.
    """
    engine = _shared(recipe) if patients is None else Deidentifier(recipe, patients=patients)
    return engine(ds)


class _Run:
    """State of one instance's pass: mappings, issues, the patient and the text cleaner."""

    __slots__ = (
        "_cleaner", "engine", "identifiers", "names", "new_name", "old_id", "pending", "result",
    )  # fmt: skip

    def __init__(self, engine: Deidentifier, ds: Dataset) -> None:
        self.engine = engine
        self.result = DeidResult(dataset=ds, recipe_hash=engine.recipe_hash)
        self.old_id = ""
        self.new_name: str | None = None
        if engine.patients is not None:
            self.old_id = text_of(ds.get(t.PATIENT_ID_TAG))
            if not self.old_id:
                raise UnmappedPatientError("instance has no PatientID to map")
            self.result.patient = (self.old_id, self._map_id(self.old_id))
        # Cheap (no conversion) and needed before the walk replaces the originals.
        self.identifiers = identifiers_of(ds)
        self._cleaner: TextCleaner | None = None
        #: Person names met anywhere in the walk, and the free text waiting to be cleaned
        #: once all of them are known (a nested name may come after the text naming it).
        self.names: list[str] = []
        self.pending: list[DataElement] = []

    def clean_pending(self) -> None:
        """Clean the deferred free text, knowing every person name of the instance."""
        if not self.pending:
            return
        if self.names:
            self.identifiers = (*self.identifiers, *self.names)
            self._cleaner = None
        for elem in self.pending:
            self.clean(elem)

    @property
    def cleaner(self) -> TextCleaner:
        """The text cleaner for this instance's patient, built on first use."""
        if self._cleaner is None:
            self._cleaner = self.engine.cleaner(self.identifiers)
        return self._cleaner

    def _map_id(self, old: str) -> str:
        patients = self.engine.patients
        assert patients is not None
        entry = patients.get(old)
        if entry is None:
            raise UnmappedPatientError("patient is not in the ID map", patient_id=old)
        if old == self.old_id:
            self.new_name = entry[1] or entry[0]
        return entry[0]

    def walk(self, ds: Dataset, path: str, *, top: bool) -> None:
        """Apply the plan to every element of ``ds`` and, through sequences, below it."""
        plan = self.engine.plan
        cache = plan.cache
        raw = ds._dict
        private: list[BaseTag] = []
        for tag in list(raw):
            if tag >> 16 & 1:
                private.append(tag)
                continue
            act = cache.get(int(tag))
            if act is None:
                act = plan.action(int(tag), raw[tag].VR)
            if tag in PN_TAGS:
                self.note_name(ds, raw[tag])
            if act == t.KEEP:
                if needs_repair(raw[tag]) and not repair(ds, tag):
                    reason = "element without a VR removed"
                    self.result.issues.append(DeidIssue(path, int(tag), reason))
                continue
            if act == t.REMOVE:
                del ds[tag]
                continue
            try:
                self.apply(ds, tag, act, path, top=top)
            except (DeidError, RecursionError):
                raise
            except Exception as exc:
                raise UndecodableError(
                    f"cannot process {_where(path, tag)}: {type(exc).__name__}",
                    tag=_where(path, tag),
                ) from exc
        if private:
            self.private(ds, private, path)

    def apply(self, ds: Dataset, tag: BaseTag, act: int, path: str, *, top: bool) -> None:
        """Carry out one non-trivial action on ``ds[tag]``."""
        current = ds._dict[tag]
        if (
            current.is_raw
            and act in RAW_ACTIONS
            and isinstance(current, RawDataElement)
            and self.apply_raw(ds, current, act, path, top=top)
        ):
            return
        try:
            elem = ds[tag]
        except (DeidError, RecursionError):
            raise
        except Exception:
            if act not in (t.RECURSE, t.EMPTY, t.CLEAN_TEXT, t.DUMMY):
                raise
            # A sequence or text that cannot be read cannot be inspected or cleaned, so
            # it cannot be kept; nothing required for the patient's identity is lost.
            del ds._dict[tag]
            self.result.issues.append(DeidIssue(path, int(tag), "undecodable attribute removed"))
            return
        if act == t.RECURSE:
            if elem.VR != "SQ":
                # A sequence we cannot parse (e.g. implicit VR private SQ read as UN) cannot
                # be inspected, so it cannot be kept.
                del ds[tag]
                self.result.issues.append(DeidIssue(path, int(tag), "unparsed sequence removed"))
                return
            for i, item in enumerate(elem.value):
                self.walk(item, f"{path}({tag:08X})[{i}]", top=False)
            return
        if not self._fit_vr(ds, elem, act, path):
            return
        if act == t.AGE:
            self.age(ds, elem, path)
        elif act == t.UID:
            self.uids(elem)
        elif act in (t.SHIFT_DA, t.SHIFT_DT):
            self.dates(ds, elem, path, datetime=act == t.SHIFT_DT)
        elif act == t.EMPTY:
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif act == t.DUMMY:
            elem.value = Sequence([Dataset()]) if elem.VR == "SQ" else dummy_for(elem.VR)
        elif act == t.CLEAN_TEXT:
            self.pending.append(elem)
        elif act == t.PATIENT_ID:
            self.patient_id(elem, top=top)
        elif act == t.PATIENT_NAME:
            elem.value = self.new_name if top else None

    def apply_raw(
        self, ds: Dataset, raw: RawDataElement, act: int, path: str, *, top: bool
    ) -> bool:
        """Fast path: act on the undecoded bytes (ASCII-only VRs); False to fall back.

        Converting a raw element through pydicom costs more than the whole action, and the
        writer copies raw bytes verbatim, so DA/DT/UI and replacement values stay bytes.
        """
        vr = raw.VR if raw.VR in VALID_VRS else t.dict_vr(raw.tag)
        value = raw.value
        if vr is None or vr == "SQ" or value is None or not isinstance(value, bytes):
            return False
        new: str
        if act == t.EMPTY:
            new = ""
        elif act == t.UID and vr == "UI":
            try:
                parts = value.decode("ascii").rstrip("\x00 ").split("\\")
            except UnicodeDecodeError:
                return False
            new = "\\".join(self.uid(part) if part.strip() else "" for part in parts)
        elif act in (t.SHIFT_DA, t.SHIFT_DT) and vr in ("DA", "DT"):
            text = value.decode("ascii", "replace").rstrip("\x00 ")
            if not text:
                return True
            try:
                new = shift_values(
                    text, self.engine.recipe.date_offset_days, datetime=act == t.SHIFT_DT
                )
            except BadDate:
                del ds[raw.tag]
                self.result.issues.append(DeidIssue(path, int(raw.tag), "invalid date removed"))
                return True
        elif act == t.PATIENT_NAME:
            new = (self.new_name or "") if top else ""
        elif act == t.PATIENT_ID and top:
            assert self.result.patient is not None
            new = self.result.patient[1]
        elif act == t.DUMMY and isinstance(dummy := dummy_for(vr), str):
            new = dummy
        elif act == t.AGE and vr == "AS":
            text = value.decode("ascii", "replace").strip("\x00 ")
            try:
                new = "\\".join(cap_age(part) for part in text.split("\\")) if text else ""
            except BadAge:
                del ds[raw.tag]
                self.result.issues.append(DeidIssue(path, int(raw.tag), "invalid age removed"))
                return True
        else:
            return False
        if not new.isascii():
            return False
        data = new.encode("ascii")
        if len(data) % 2:
            data += b"\x00" if vr == "UI" else b" "
        ds._dict[raw.tag] = raw._replace(VR=vr, value=data, length=len(data))
        return True

    def note_name(self, ds: Dataset, elem: DataElement | RawDataElement) -> None:
        """Remember a person name (its components go to the text cleaner)."""
        value = elem.value
        if not value:
            return
        if isinstance(value, bytes):
            self.names.extend(decode(ds, value).split("\\"))
        elif isinstance(value, str | PersonName):
            self.names.append(str(value))
        else:
            self.names.extend(str(v) for v in value)

    def uids(self, elem: DataElement) -> None:
        """Replace every value of a UI element by its keyed hash (well-known ones stay)."""
        value = elem.value
        if not value:
            return
        if isinstance(value, str):
            elem.value = self.uid(value)
        else:
            elem.value = [self.uid(str(v)) for v in value]

    def uid(self, old: str) -> str:
        """One UID's replacement, recorded in the result's map."""
        old = old.strip()
        new = self.engine.hasher(old)
        if new != old:
            self.result.uid_map[old] = new
        return new

    def dates(self, ds: Dataset, elem: DataElement, path: str, *, datetime: bool) -> None:
        """Shift DA/DT by the recipe's offset; remove and report what cannot be shifted."""
        value = elem.value
        if value is None or value == "":
            return
        text = value if isinstance(value, str) else "\\".join(str(v) for v in value)
        try:
            elem.value = shift_values(text, self.engine.recipe.date_offset_days, datetime=datetime)
        except BadDate:
            del ds[elem.tag]
            self.result.issues.append(DeidIssue(path, int(elem.tag), "invalid date removed"))

    def clean(self, elem: DataElement) -> None:
        """Free text with dates and known identifiers removed."""
        value = elem.value
        if not value:
            return
        if isinstance(value, str | PersonName):
            elem.value = self.cleaner(str(value)) or None
            return
        cleaned = [c for c in (self.cleaner(str(v)) for v in value) if c]
        elem.value = cleaned or None

    def patient_id(self, elem: DataElement, *, top: bool) -> None:
        """Map PatientID; a nested PatientID of an unknown patient is refused too."""
        if top:
            assert self.result.patient is not None
            elem.value = self.result.patient[1]
            return
        old = text_of(elem)
        if old:
            elem.value = self._map_id(old)

    def private(self, ds: Dataset, tags: list[BaseTag], path: str) -> None:
        """Keep only private attributes the recipe keeps, matched by creator, never raw tag."""
        plan = self.engine.plan
        raw = ds._dict
        creators: dict[int, str] = {}
        for tag in tags:
            element = tag & 0xFFFF
            if 0x10 <= element <= 0xFF:
                creators[(tag >> 16) << 8 | element] = creator_of(raw[tag].value)
        used: set[int] = set()
        for tag in tags:
            element = tag & 0xFFFF
            if 0x10 <= element <= 0xFF:
                continue
            block = (tag >> 16) << 8 | element >> 8
            creator = creators.get(block) if element > 0xFF else None
            kept = plan.private_keep.get((tag >> 16, creator, element & 0xFF)) if creator else None
            if raw[tag].VR == "PN":
                self.note_name(ds, raw[tag])
            if kept is None:
                del ds[tag]
                continue
            vr = raw[tag].VR
            if vr in (None, "UN"):
                vr = kept[1] or ds[tag].VR
            act = t.private_action(plan, kept[0], vr)
            if act == t.REMOVE:
                del ds[tag]
                continue
            used.add(block)
            if act != t.KEEP:
                self.apply(ds, tag, act, path, top=False)
        for block in creators.keys() - used:
            del ds[BaseTag((block >> 8) << 16 | block & 0xFF)]

    def age(self, ds: Dataset, elem: DataElement, path: str) -> None:
        """Ages kept by Retain Patient Characteristics, with 90 and over capped at 090Y."""
        value = elem.value
        if not value:
            return
        parts = [value] if isinstance(value, str) else [str(v) for v in value]
        try:
            elem.value = "\\".join(cap_age(part) for part in parts)
        except BadAge:
            del ds[elem.tag]
            self.result.issues.append(DeidIssue(path, int(elem.tag), "invalid age removed"))

    def _fit_vr(self, ds: Dataset, elem: DataElement, act: int, path: str) -> bool:
        """False when a known attribute's VR cannot fit its action: it is then removed
        (and the patient's identifiers written afresh with the right VR)."""
        expected = fit_vr(elem, emptying=act == t.EMPTY)
        if expected is None:
            return True
        tag = elem.tag
        del ds[tag]
        self.result.issues.append(DeidIssue(path, int(tag), f"{elem.VR} where {expected} is due"))
        if act == t.PATIENT_ID and path == "":
            assert self.result.patient is not None
            ds.add_new(tag, expected, self.result.patient[1])
        elif act == t.PATIENT_NAME and path == "":
            ds.add_new(tag, expected, self.new_name)
        return False


def _where(path: str, tag: int) -> str:
    return f"{path}({tag:08X}) {keyword_for_tag(tag)}".strip()
