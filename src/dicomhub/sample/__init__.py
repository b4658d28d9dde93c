"""Synthetic sample collections: realistic, PHI-laden DICOM made entirely by code.

No real patient data is used anywhere; names, identifiers, dates and pixels come from
seeded generators. ``make_sample`` is the entry point; ``dicomhub sample make`` wraps it.
"""

from dicomhub.sample.collection import check_out, make_sample, plan_sample
from dicomhub.sample.manifest import FileEntry, PatientEntry, PhiHit, SampleManifest

__all__ = [
    "FileEntry",
    "PatientEntry",
    "PhiHit",
    "SampleManifest",
    "check_out",
    "make_sample",
    "plan_sample",
]
