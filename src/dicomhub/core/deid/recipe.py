"""The de-identification recipe: what a kit tells the engine to do, as plain data.

A recipe is declarative (a curator diffs it in TOML or JSON) and hashed: the hash of its
canonical JSON is written into every de-identified instance so intake can check which
rules produced it. The UID secret is key material, not a rule, so it is excluded from
the canonical form, the hash and ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from dicomhub.core.deid.pixels import PixelRule

UID_ROOT_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: A hashed UID keeps at least this many digest digits (about 66 bits).
MIN_UID_DIGITS = 20


class Option(Enum):
    """A PS3.15 option with a column in Table E.1-1: (column key, CID 7050 code, meaning)."""

    RETAIN_SAFE_PRIVATE = ("rtnSafePrivOpt", "113111", "Retain Safe Private Option")
    RETAIN_UIDS = ("rtnUIDsOpt", "113110", "Retain UIDs Option")
    RETAIN_DEVICE_IDENTITY = ("rtnDevIdOpt", "113109", "Retain Device Identity Option")
    RETAIN_INSTITUTION_IDENTITY = ("rtnInstIdOpt", "113112", "Retain Institution Identity Option")
    RETAIN_PATIENT_CHARACTERISTICS = (
        "rtnPatCharsOpt",
        "113108",
        "Retain Patient Characteristics Option",
    )
    RETAIN_LONG_FULL_DATES = (
        "rtnLongFullDatesOpt",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    )
    RETAIN_LONG_MODIFIED_DATES = (
        "rtnLongModifDatesOpt",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    )
    CLEAN_DESCRIPTORS = ("cleanDescOpt", "113105", "Clean Descriptors Option")
    CLEAN_STRUCTURED_CONTENT = ("cleanStructContOpt", "113104", "Clean Structured Content Option")
    CLEAN_GRAPHICS = ("cleanGraphOpt", "113103", "Clean Graphics Option")

    @property
    def column(self) -> str:
        """The option's column key in the generated table."""
        return self.value[0]

    @property
    def code(self) -> str:
        """CID 7050 code value (scheme DCM)."""
        return self.value[1]

    @property
    def meaning(self) -> str:
        """CID 7050 code meaning."""
        return self.value[2]


BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

#: Unlisted standard attributes with these VRs cannot carry free text and are kept.
DEFAULT_KEEP_VRS: tuple[str, ...] = (
    "AT", "CS", "DS", "FD", "FL", "IS", "OB", "OD", "OF", "OL", "OV", "OW",
    "SL", "SQ", "SS", "SV", "UL", "US", "UV",
)  # fmt: skip

#: Unlisted free-text attributes that describe acquisition or coding, never a person.
DEFAULT_KEEP_TEXT: tuple[str, ...] = (
    "CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
    "LongCodeValue", "URNCodeValue", "ContextIdentifier", "MappingResourceName",
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions",
    "ConvolutionKernel", "WindowCenterWidthExplanation", "RescaleType", "LUTExplanation",
    "SequenceName", "ReceiveCoilName", "TransmitCoilName", "PulseSequenceName",
    "FilterType", "ContrastBolusRoute", "Radiopharmaceutical", "ReconstructionMethod",
    "AttenuationCorrectionMethod", "ScatterCorrectionMethod", "DecayCorrection",
    "ImplementationVersionName", "PositionReferenceIndicator", "TransducerData",
    "ProcessingFunction", "ContrastBolusIngredient",
)  # fmt: skip


class Recipe(BaseModel):
    """Everything the engine needs to de-identify instances of one collection and site.

    Each ``retain_*``/``clean_*`` flag switches on one PS3.15 option, applied as an overlay
    on the Basic Profile column. ``keep``/``remove`` name attributes (keyword, ``ggggeeee``,
    ``(gggg,eeee)`` or a repeating-group pattern such as ``(60xx,3000)``) whose action they
    override; ``keep_private`` names private attributes as ``gggg,CREATOR,ee``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kit_id: str = Field(min_length=1, max_length=64)
    uid_root: str
    uid_secret: SecretStr = Field(exclude=True)
    date_offset_days: int = Field(default=0, ge=-36500, le=36500)
    body_part_examined: str | None = Field(default=None, max_length=16)

    retain_long_full_dates: bool = False
    retain_long_modified_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_safe_private: bool = False
    retain_uids: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False

    #: With Modified Dates, times (TM) are kept (a whole-day shift leaves clock time true);
    #: False empties them instead.
    keep_times: bool = True
    #: Which private attributes Retain Safe Private keeps: the Table E.3.10-1 rows only, or
    #: every row of TCIA's private tag knowledge base (with its keep/hash/shift dispositions).
    safe_private_source: Literal["e3101", "tcia_kb"] = "e3101"

    #: Clean Pixel Data: rectangles blanked in images a rule matches (first match wins);
    #: an image no rule matches keeps its pixels and goes through the burned-in filter.
    clean_pixels: tuple[PixelRule, ...] = ()

    keep: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    keep_private: tuple[str, ...] = ()
    #: How X/Z, X/D, X/Z/D, Z/D and X/Z/U* resolve without the instance's IOD Types:
    #: "conformant" keeps the element (Z, D or U), valid whatever the Type;
    #: "minimal" removes (X) or empties (Z), valid only for Type 3 (or 2).
    compound: Literal["conformant", "minimal"] = "conformant"
    keep_vrs: tuple[str, ...] = DEFAULT_KEEP_VRS
    keep_text: tuple[str, ...] = DEFAULT_KEEP_TEXT

    @field_validator("uid_root")
    @classmethod
    def _check_root(cls, value: str) -> str:
        if not UID_ROOT_RE.match(value):
            raise ValueError("uid_root must be dotted decimal without leading zeros")
        if len(value) + 1 + MIN_UID_DIGITS > 64:
            raise ValueError(f"uid_root is too long to leave {MIN_UID_DIGITS} digest digits")
        return value

    @field_validator("uid_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("uid_secret must be at least 16 characters")
        return value

    @field_validator("body_part_examined")
    @classmethod
    def _check_body_part(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z0-9_ ]{1,16}", value):
            raise ValueError("body_part_examined must be a DICOM CS value (A-Z, 0-9, _ )")
        return value

    @model_validator(mode="after")
    def _check_exclusive(self) -> Recipe:
        if self.retain_long_full_dates and self.retain_long_modified_dates:
            raise ValueError("choose full dates or modified dates, not both")
        both = set(self.keep) & set(self.remove)
        if both:
            raise ValueError(f"attributes both kept and removed: {sorted(both)}")
        return self

    def options(self) -> tuple[Option, ...]:
        """The options switched on, in the order of :class:`Option`."""
        flags = {
            Option.RETAIN_SAFE_PRIVATE: self.retain_safe_private,
            Option.RETAIN_UIDS: self.retain_uids,
            Option.RETAIN_DEVICE_IDENTITY: self.retain_device_identity,
            Option.RETAIN_INSTITUTION_IDENTITY: self.retain_institution_identity,
            Option.RETAIN_PATIENT_CHARACTERISTICS: self.retain_patient_characteristics,
            Option.RETAIN_LONG_FULL_DATES: self.retain_long_full_dates,
            Option.RETAIN_LONG_MODIFIED_DATES: self.retain_long_modified_dates,
            Option.CLEAN_DESCRIPTORS: self.clean_descriptors,
            Option.CLEAN_STRUCTURED_CONTENT: self.clean_structured_content,
            Option.CLEAN_GRAPHICS: self.clean_graphics,
        }
        return tuple(opt for opt, on in flags.items() if on)

    @classmethod
    def from_toml(cls, text: str, *, uid_secret: str | None = None) -> Recipe:
        """Load a recipe from TOML (a kit's ``recipe.toml``); the secret may come separately."""
        data = tomllib.loads(text)
        if uid_secret is not None:
            data["uid_secret"] = uid_secret
        return cls.model_validate(data)

    def canonical_json(self) -> str:
        """Sorted-key, whitespace-free JSON of the rules (the secret excluded).

        A recipe without pixel rules leaves ``clean_pixels`` out, so kits issued before
        Clean Pixel Data existed keep the hash intake registered for them.
        """
        data = self.model_dump(mode="json")
        if not data["clean_pixels"]:
            del data["clean_pixels"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def recipe_hash(self) -> str:
        """sha256 hex of :meth:`canonical_json`; stable across runs and platforms."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()
