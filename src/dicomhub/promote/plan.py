"""What a promotion takes from intake: the accepted instances of one collection.

Only rows of the intake ``instance`` table are candidates (quarantined objects
never get one); an accepted instance whose SOPInstanceUID also has a *held*
quarantine item (a later copy that conflicted) is left out until a curator
settles it, and the plan says how many were left out.

The plan's digest names its content (recipe hash, and each SOPInstanceUID with
the sha256 intake recorded), so running the same promotion again finds the
release it started, and any change in intake gives a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.db import (
    Collection,
    Instance,
    Patient,
    QuarantineItem,
    QuarantineState,
    Series,
    Study,
)
from dicomhub.errors import BadRequest, NotFound

CHUNK = 500


@dataclass(frozen=True)
class CollectionInfo:
    """The intake collection row, copied to the public side on publication."""

    name: str
    description: str
    access: str
    license_name: str
    license_url: str
    citation: str
    doi: str

    @classmethod
    def from_row(cls, row: Collection) -> CollectionInfo:
        return cls(
            row.name,
            row.description,
            row.access.value,
            row.license_name,
            row.license_url,
            row.citation,
            row.doi,
        )


@dataclass(frozen=True)
class PlanItem:
    """One accepted intake instance: where it sits and what intake recorded for it."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    blob_key: str
    sha256: str
    size: int


class Placed(Protocol):
    """Anything placed in the information model (a plan item, a release item)."""

    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def series_instance_uid(self) -> str: ...
    @property
    def study_instance_uid(self) -> str: ...
    @property
    def patient_id(self) -> str: ...


@dataclass(frozen=True)
class Counts:
    """Patients, studies, series and instances: what is compared on both sides."""

    patients: int
    studies: int
    series: int
    instances: int

    def to_dict(self) -> dict[str, int]:
        return {
            "patients": self.patients,
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
        }

    def describe(self) -> str:
        return ", ".join(f"{value} {name}" for name, value in self.to_dict().items())


def count_items(items: Iterable[Placed]) -> Counts:
    """Distinct patients, studies, series and instances of ``items``."""
    patients: set[str] = set()
    studies: set[str] = set()
    series: set[str] = set()
    instances: set[str] = set()
    for item in items:
        patients.add(item.patient_id)
        studies.add(item.study_instance_uid)
        series.add(item.series_instance_uid)
        instances.add(item.sop_instance_uid)
    return Counts(len(patients), len(studies), len(series), len(instances))


@dataclass(frozen=True)
class Plan:
    """The instances one promotion publishes, sorted by SOPInstanceUID."""

    collection: CollectionInfo
    items: tuple[PlanItem, ...]
    series_selection: tuple[str, ...]
    held: int = 0

    @property
    def counts(self) -> Counts:
        return count_items(self.items)

    def digest(self, recipe_hash: str) -> str:
        """sha256 over the recipe hash, the selection and every (UID, intake sha256)."""
        hasher = hashlib.sha256(f"{self.collection.name}\n{recipe_hash}\n".encode())
        hasher.update(("\\".join(self.series_selection) + "\n").encode())
        for item in self.items:
            hasher.update(f"{item.sop_instance_uid} {item.sha256}\n".encode())
        return hasher.hexdigest()


def collection_row(session: Session, name: str) -> Collection:
    """The intake collection called ``name``; NotFound if there is none."""
    row = session.scalar(select(Collection).where(Collection.name == name))
    if row is None:
        raise NotFound(f"no collection named {name!r} in intake")
    return row


def make_plan(session: Session, name: str, series: Sequence[str] = ()) -> Plan:
    """The accepted instances of collection ``name`` (only ``series`` if given).

    Raises
    ------
    NotFound
        The collection, or one of the asked series, is not in intake.
    BadRequest
        Nothing to promote.
    """
    collection = collection_row(session, name)
    query = (
        select(
            Instance.sop_instance_uid,
            Series.series_instance_uid,
            Study.study_instance_uid,
            Patient.patient_id,
            Instance.blob_key,
            Instance.sha256,
            Instance.size,
        )
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .where(Series.collection_id == collection.id)
    )
    rows: list[Any] = []
    if series:
        for start in range(0, len(series), CHUNK):
            chunk = series[start : start + CHUNK]
            rows.extend(session.execute(query.where(Series.series_instance_uid.in_(chunk))))
        missing = sorted(set(series) - {row[1] for row in rows})
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise NotFound(
                f"series not in intake collection {name!r}: {', '.join(missing[:3])}{more}"
            )
    else:
        rows.extend(session.execute(query))
    held = _held_uids(session, name)
    items = sorted(
        (PlanItem(*row) for row in rows if row[0] not in held), key=lambda i: i.sop_instance_uid
    )
    if not items:
        raise BadRequest(f"collection {name!r} has no accepted instances to promote")
    return Plan(
        CollectionInfo.from_row(collection),
        tuple(items),
        tuple(sorted(series)),
        held=len(rows) - len(items),
    )


def _held_uids(session: Session, name: str) -> set[str]:
    query = select(QuarantineItem.sop_instance_uid).where(
        QuarantineItem.collection == name,
        QuarantineItem.state == QuarantineState.HELD,
        QuarantineItem.sop_instance_uid != "",
    )
    return set(session.scalars(query))
