"""De-identification engine: PS3.15 Annex E (Table E.1-1, 2024b) with options as overlays.

Public API: :class:`Recipe`, :class:`Deidentifier`, :func:`deidentify`,
:class:`DeidResult`, :class:`DeidError` and its kinds (``code`` is the reason),
:class:`UnmappedPatientError`, :class:`PixelRule` (Clean Pixel Data).
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
