"""De-identification engine: PS3.15 Annex E (Table E.1-1, 2024b) with options as overlays.

Public API: :class:`Recipe`, :class:`Deidentifier`, :func:`deidentify`,
:class:`DeidResult`, :class:`UnmappedPatientError`, :class:`PixelRule` (Clean Pixel Data).
"""

from dicomhub.core.deid.engine import (
    Deidentifier,
    DeidIssue,
    DeidResult,
    PatientMap,
    UnmappedPatientError,
    deidentify,
)
from dicomhub.core.deid.pixels import PixelCleanError, PixelRule
from dicomhub.core.deid.provenance import PRIVATE_CREATOR, read_provenance
from dicomhub.core.deid.recipe import Option, Recipe
from dicomhub.core.deid.uids import UidHasher

__all__ = [
    "PRIVATE_CREATOR",
    "DeidIssue",
    "DeidResult",
    "Deidentifier",
    "Option",
    "PatientMap",
    "PixelCleanError",
    "PixelRule",
    "Recipe",
    "UidHasher",
    "UnmappedPatientError",
    "deidentify",
    "read_provenance",
]
