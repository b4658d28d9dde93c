"""De-identification engine: PS3.15 Annex E (Table E.1-1, 2024b) with options as overlays.

Public API: :class:`Recipe`, :class:`Deidentifier`, :func:`deidentify`,
:class:`DeidResult`, :class:`DeidError` and its kinds (``code`` is the reason),
:class:`UnmappedPatientError`, :class:`PixelRule` (Clean Pixel Data).

Every refusal is a :class:`DeidError` whose ``code`` a caller can use as a local
quarantine reason and whose ``message`` names attributes, never values:
``unmapped_patient`` (no PatientID, or not in the ID map), ``pixel_clean_failed`` (a
Clean Pixel Data rule matched pixels that cannot be decoded), ``missing_uid`` (no
SOPClassUID or SOPInstanceUID: the output could not be a Part 10 file),
``undecodable_attribute`` (an attribute the recipe must change cannot be decoded, or
sequences nest too deeply) and ``deid_failed`` (anything else).
"""

from dicomhub.core.deid.engine import (
    Deidentifier,
    DeidIssue,
    DeidResult,
    PatientMap,
    deidentify,
)
from dicomhub.core.deid.errors import (
    DeidError,
    MissingUidError,
    UndecodableError,
    UnmappedPatientError,
)
from dicomhub.core.deid.pixels import PixelCleanError, PixelRule
from dicomhub.core.deid.provenance import PRIVATE_CREATOR, read_provenance
from dicomhub.core.deid.recipe import Option, Recipe
from dicomhub.core.deid.uids import UidHasher

__all__ = [
    "PRIVATE_CREATOR",
    "DeidError",
    "DeidIssue",
    "DeidResult",
    "Deidentifier",
    "MissingUidError",
    "Option",
    "PatientMap",
    "PixelCleanError",
    "PixelRule",
    "Recipe",
    "UidHasher",
    "UndecodableError",
    "UnmappedPatientError",
    "deidentify",
    "read_provenance",
]
