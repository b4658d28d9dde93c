"""Provenance written into every de-identified instance (PS3.15 E.1.1, PS3.3 C.7.1.1).

Besides the standard attributes, a private block records the kit id and the recipe hash,
so intake can refuse instances that were not produced by the kit it issued.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from dicomhub import __version__
from dicomhub.core.deid import _annex_e
from dicomhub.core.deid.pixels import CLEAN_PIXEL_CODE
from dicomhub.core.deid.recipe import BASIC_PROFILE_CODE, Recipe

PRIVATE_CREATOR = "DICOMHUB 1.0"
PRIVATE_GROUP = 0x0013
#: Block-relative elements of the dicomhub private block.
ELEM_KIT_ID = 0x01
ELEM_RECIPE_HASH = 0x02
ELEM_ENGINE = 0x03
ELEM_ANNEX_E_EDITION = 0x04


def method_codes(recipe: Recipe, *, pixels_cleaned: bool = False) -> list[tuple[str, str]]:
    """CID 7050 (code value, meaning) pairs for the Basic Profile and each option used.

    Clean Pixel Data has no column in Table E.1-1 and is claimed per instance, only where
    a rule actually blanked the pixels.
    """
    pixel = [CLEAN_PIXEL_CODE] if pixels_cleaned else []
    return [BASIC_PROFILE_CODE, *pixel, *((opt.code, opt.meaning) for opt in recipe.options())]


def temporal_status(recipe: Recipe) -> str:
    """Longitudinal Temporal Information Modified (0028,0303) for this recipe."""
    if recipe.retain_long_modified_dates:
        return "MODIFIED"
    if recipe.retain_long_full_dates:
        return "UNMODIFIED"
    return "REMOVED"


def _encode(value: str | list[str]) -> bytes:
    text = value if isinstance(value, str) else "\\".join(value)
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _element(tag: int, vr: str, data: bytes, implicit: bool) -> bytes:
    """One little-endian element with a short-length VR (SH, LO, CS)."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack("<I", len(data)) + data
    return head + vr.encode("ascii") + struct.pack("<H", len(data)) + data


class Provenance:
    """The provenance elements of one recipe, encoded once and stamped on every instance.

    Values are kept as encoded bytes and inserted as raw elements (immutable, written
    verbatim), because building a dozen pydicom elements per instance costs more than
    the rest of the de-identification of a typical header.
    """

    def __init__(self, recipe: Recipe, recipe_hash: str, *, pixels_cleaned: bool = False) -> None:
        codes = method_codes(recipe, pixels_cleaned=pixels_cleaned)
        method = [f"dicomhub {__version__} PS3.15 E.1-1 {_annex_e.EDITION}"]
        method.extend(meaning for _, meaning in codes)
        self.public: list[tuple[int, str, bytes]] = [
            (0x00120062, "CS", _encode("YES")),
            (0x00120063, "LO", _encode(method)),
            (0x00280303, "CS", _encode(temporal_status(recipe))),
        ]
        if pixels_cleaned:
            self.public.append((0x00280301, "CS", _encode("NO")))
        if recipe.body_part_examined:
            self.public.append((0x00180015, "CS", _encode(recipe.body_part_examined)))
        self.codes = [
            [
                (0x00080100, "SH", _encode(value)),
                (0x00080102, "SH", _encode("DCM")),
                (0x00080104, "LO", _encode(meaning)),
            ]
            for value, meaning in codes
        ]
        self.private: list[tuple[int, str, bytes]] = [
            (ELEM_KIT_ID, "LO", _encode(recipe.kit_id)),
            (ELEM_RECIPE_HASH, "LO", _encode(recipe_hash)),
            (ELEM_ENGINE, "LO", _encode(f"dicomhub {__version__}")),
            (ELEM_ANNEX_E_EDITION, "LO", _encode(_annex_e.EDITION)),
        ]
        self._encoded: dict[bool, bytes] = {}

    def _sequence_bytes(self, implicit: bool) -> bytes:
        """DeidentificationMethodCodeSequence value, little endian, defined lengths."""
        cached = self._encoded.get(implicit)
        if cached is None:
            items = []
            for code in self.codes:
                body = b"".join(_element(tag, vr, data, implicit) for tag, vr, data in code)
                items.append(struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body)
            cached = self._encoded[implicit] = b"".join(items)
        return cached

    def stamp(self, ds: Dataset) -> None:
        """Write PatientIdentityRemoved, the method attributes and the dicomhub private block."""
        implicit, little = ds.original_encoding
        flags = (bool(implicit), little is not False)

        def put(target: Dataset, tag: int, vr: str, data: bytes) -> None:
            target._dict[BaseTag(tag)] = RawDataElement(
                BaseTag(tag), vr, len(data), data, 0, *flags, True, False
            )

        for tag, vr, data in self.public:
            put(ds, tag, vr, data)
        if implicit is not None and little:
            # Known little-endian encoding: the code sequence goes in as raw bytes too,
            # which the writer copies instead of walking four items.
            data = self._sequence_bytes(bool(implicit))
            put(ds, 0x00120064, "SQ", data)
        else:
            items = []
            for code in self.codes:
                item = Dataset()
                for tag, vr, value in code:
                    put(item, tag, vr, value)
                items.append(item)
            ds._dict[BaseTag(0x00120064)] = DataElement(0x00120064, "SQ", Sequence(items))
        block = _free_block(ds)
        put(ds, PRIVATE_GROUP << 16 | block, "LO", _encode(PRIVATE_CREATOR))
        base = PRIVATE_GROUP << 16 | block << 8
        for elem, vr, data in self.private:
            put(ds, base | elem, vr, data)
        ds._private_blocks = {}


def _free_block(ds: Dataset) -> int:
    """The block byte of our creator in PRIVATE_GROUP (existing, else the first free one)."""
    taken: dict[int, str] = {}
    for tag in ds._dict:
        if tag >> 16 == PRIVATE_GROUP and 0x10 <= tag & 0xFFFF <= 0xFF:
            taken[tag & 0xFF] = str(ds[tag].value).strip()
    for block, creator in taken.items():
        if creator == PRIVATE_CREATOR:
            return block
    return next(b for b in range(0x10, 0x100) if b not in taken)


def add_provenance(ds: Dataset, recipe: Recipe, recipe_hash: str) -> None:
    """One-off :meth:`Provenance.stamp` (the engine keeps a :class:`Provenance` per recipe)."""
    Provenance(recipe, recipe_hash).stamp(ds)


def read_provenance(ds: Dataset) -> dict[str, str] | None:
    """The kit id and recipe hash recorded by :func:`add_provenance`, or None if absent."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return None
    out = {}
    for name, elem in (("kit_id", ELEM_KIT_ID), ("recipe_hash", ELEM_RECIPE_HASH)):
        if elem in block:
            value = block[elem].value
            # In implicit VR files our private elements are unknown to the dictionary and
            # come back as UN bytes.
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace").rstrip(" \x00")
            out[name] = str(value).strip()
    return out
