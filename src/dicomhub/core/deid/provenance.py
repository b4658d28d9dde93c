"""Provenance written into every de-identified instance (PS3.15 E.1.1, PS3.3 C.7.1.1).

Besides the standard attributes, a private block records the kit id and the recipe hash,
so intake can refuse instances that were not produced by the kit it issued.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomhub import __version__
from dicomhub.core.deid import _annex_e
from dicomhub.core.deid.recipe import BASIC_PROFILE_CODE, Recipe

PRIVATE_CREATOR = "DICOMHUB 1.0"
PRIVATE_GROUP = 0x0013
#: Block-relative elements of the dicomhub private block.
ELEM_KIT_ID = 0x01
ELEM_RECIPE_HASH = 0x02
ELEM_ENGINE = 0x03
ELEM_ANNEX_E_EDITION = 0x04


def method_codes(recipe: Recipe) -> list[tuple[str, str]]:
    """CID 7050 (code value, meaning) pairs for the Basic Profile and each option used."""
    return [BASIC_PROFILE_CODE, *((opt.code, opt.meaning) for opt in recipe.options())]


def temporal_status(recipe: Recipe) -> str:
    """Longitudinal Temporal Information Modified (0028,0303) for this recipe."""
    if recipe.retain_long_modified_dates:
        return "MODIFIED"
    if recipe.retain_long_full_dates:
        return "UNMODIFIED"
    return "REMOVED"


def add_provenance(ds: Dataset, recipe: Recipe, recipe_hash: str) -> None:
    """Write PatientIdentityRemoved, the method attributes and the dicomhub private block."""
    ds.PatientIdentityRemoved = "YES"
    codes = method_codes(recipe)
    ds.DeidentificationMethod = [
        f"dicomhub {__version__} PS3.15 E.1-1 {_annex_e.EDITION}",
        *(meaning for _, meaning in codes),
    ]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = temporal_status(recipe)
    if recipe.body_part_examined:
        ds.BodyPartExamined = recipe.body_part_examined
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(ELEM_KIT_ID, "LO", recipe.kit_id)
    block.add_new(ELEM_RECIPE_HASH, "LO", recipe_hash)
    block.add_new(ELEM_ENGINE, "LO", f"dicomhub {__version__}")
    block.add_new(ELEM_ANNEX_E_EDITION, "LO", _annex_e.EDITION)


def read_provenance(ds: Dataset) -> dict[str, str] | None:
    """The kit id and recipe hash recorded by :func:`add_provenance`, or None if absent."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return None
    out = {}
    for name, elem in (("kit_id", ELEM_KIT_ID), ("recipe_hash", ELEM_RECIPE_HASH)):
        if elem in block:
            out[name] = str(block[elem].value)
    return out
