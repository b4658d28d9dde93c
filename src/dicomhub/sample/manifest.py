"""The manifest: every file of a sample, and every PHI string planted in it.

De-identification tests read it to know exactly which strings must not survive, and
where (top level, nested sequence or private element) each one was planted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

SKIP_VRS = {"UI", "OW", "OF", "OD", "OL", "OV", "FL", "FD", "SS", "US", "SL", "UL", "AT"}


@dataclass(frozen=True)
class PhiHit:
    """One planted PHI string: its kind, value, where it sits and the tag path to it."""

    kind: str
    value: str
    location: str
    path: str


@dataclass(frozen=True)
class FileEntry:
    """One written file and the PHI found in it."""

    path: str
    patient: str
    patient_id: str
    study: str
    study_instance_uid: str
    series: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    transfer_syntax: str
    transfer_syntax_name: str
    phi: list[PhiHit] = field(default_factory=list)


@dataclass(frozen=True)
class PatientEntry:
    """One fake patient and all PHI strings planted for them (patient and study level)."""

    key: str
    patient_id: str
    patient_name: str
    phi: dict[str, str]


@dataclass
class SampleManifest:
    """What ``make_sample`` wrote; ``manifest.json`` holds the same as JSON."""

    seed: int
    small: bool
    patients: list[PatientEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> SampleManifest:
        """Load a ``manifest.json`` back into objects."""
        raw = json.loads(path.read_text())
        files = [
            FileEntry(**{**f, "phi": [PhiHit(**hit) for hit in f["phi"]]}) for f in raw["files"]
        ]
        patients = [PatientEntry(**p) for p in raw["patients"]]
        return cls(seed=raw["seed"], small=raw["small"], patients=patients, files=files)

    def phi_values(self) -> set[str]:
        """Every PHI string of every patient; none may survive de-identification."""
        return {value for patient in self.patients for value in patient.phi.values()}


def _text(elem: DataElement) -> str | None:
    if elem.VR in SKIP_VRS or elem.value is None:
        return None
    if isinstance(elem.value, bytes):
        return elem.value.decode("latin-1") if elem.tag.is_private else None
    if isinstance(elem.value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in elem.value)
    return str(elem.value)


def _walk(ds: Dataset, prefix: str, private: bool) -> Iterator[tuple[str, DataElement, bool]]:
    for elem in ds:
        path = f"{prefix}{elem.keyword or str(elem.tag)}"
        in_private = private or elem.tag.is_private
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value):
                yield from _walk(item, f"{path}[{number}].", in_private)
        elif elem.tag != 0x7FE00010:
            yield path, elem, in_private


def find_phi(ds: Dataset, phi: dict[str, str]) -> list[PhiHit]:
    """Every (kind, element) pair where a planted PHI string occurs in ``ds``."""
    hits: list[PhiHit] = []
    for path, elem, private in _walk(ds, "", False):
        text = _text(elem)
        if not text:
            continue
        location = "private" if private else ("nested" if "[" in path else "top")
        hits.extend(
            PhiHit(kind, value, location, path) for kind, value in phi.items() if value in text
        )
    return hits
