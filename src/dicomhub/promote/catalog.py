"""Write a release's catalogue rows on the public side, inside the caller's transaction.

Rows are upserted by their natural keys (the collection by name, a patient by
collection and PatientID, studies, series and instances by UID), in bulk, so a
release of a hundred thousand instances is a few dozen statements per table and
re-publishing the same content changes nothing.  A UID already published under
another collection is a :class:`~dicomhub.errors.Conflict`: the transaction
rolls back and nothing is published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from dicomhub.core.db import (
    Access,
    Collection,
    Instance,
    Patient,
    ReleaseItem,
    Series,
    Study,
    utcnow,
)
from dicomhub.core.dicom.index import IndexRecord, index_record
from dicomhub.errors import Conflict
from dicomhub.promote.plan import CollectionInfo

CHUNK = 500
_K = TypeVar("_K")


def _chunks(values: Sequence[_K], size: int = CHUNK) -> Iterable[Sequence[_K]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def upsert_collection(session: Session, info: CollectionInfo) -> int:
    """Create or update the public collection from intake's row; its id."""
    row = session.scalar(select(Collection).where(Collection.name == info.name))
    values = asdict(info)
    values["access"] = Access(info.access)
    if row is None:
        row = Collection(**values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()
    return row.id


def _existing(
    session: Session, query: Callable[[Sequence[str]], Any], keys: Sequence[str]
) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(keys):
        for row in session.execute(query(chunk)):
            found[row[0]] = tuple(row[1:])
    return found


def _bulk(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(model), rows)


def _bulk_update(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(update(model), rows)


def _upsert(
    session: Session,
    model: type[Any],
    query: Callable[[Sequence[str]], Any],
    found: dict[str, tuple[Any, ...]],
    values: dict[str, dict[str, Any]],
    natural_key: Callable[[str], dict[str, Any]],
) -> dict[str, int]:
    """Update the rows ``found`` holds, insert the rest under their natural key; every id.

    Patients, studies and series are written alike; the ids are read back by
    ``query`` because bulk inserts do not return them on every backend.
    """
    keys = sorted(values)
    _bulk_update(session, model, [{"id": found[k][0], **values[k]} for k in keys if k in found])
    _bulk(session, model, [{**natural_key(k), **values[k]} for k in keys if k not in found])
    return {k: v[0] for k, v in _existing(session, query, keys).items()}


class CatalogueWriter:
    """One release's rows, written in one session (the caller commits or rolls back)."""

    def __init__(self, session: Session, collection_id: int, items: Sequence[ReleaseItem]):
        self.session = session
        self.collection_id = collection_id
        self.items = items
        self.records: dict[str, IndexRecord] = {}
        for item in items:
            if item.header is None:
                raise Conflict(f"staged item {item.sop_instance_uid} has no header")
            self.records[item.sop_instance_uid] = index_record(
                item.header, item.transfer_syntax_uid
            )

    def write(self) -> None:
        """Patients, studies, series, instances, then the series' counts and sizes."""
        patients = self._patients()
        studies = self._studies(patients)
        series = self._series(studies)
        moved_from = self._instances(series)
        self._series_totals(sorted(set(series.values()) | moved_from))

    def _first(self, attr: str) -> dict[str, IndexRecord]:
        """The first record (in SOPInstanceUID order) for each value of ``attr``."""
        firsts: dict[str, IndexRecord] = {}
        for record in self.records.values():
            firsts.setdefault(getattr(record, attr), record)
        return firsts

    def _patients(self) -> dict[str, int]:
        wanted = self._first("patient_id")

        def query(chunk: Sequence[str]) -> Any:
            return select(Patient.patient_id, Patient.id).where(
                Patient.collection_id == self.collection_id, Patient.patient_id.in_(chunk)
            )

        keys = sorted(wanted)
        found = _existing(self.session, query, keys)
        values = {
            key: dict(
                patient_name=r.patient_name,
                patient_sex=r.patient_sex,
                patient_age=r.patient_age,
                ethnic_group=r.ethnic_group,
            )
            for key, r in wanted.items()
        }
        return _upsert(
            self.session,
            Patient,
            query,
            found,
            values,
            lambda k: {"collection_id": self.collection_id, "patient_id": k},
        )

    def _studies(self, patients: dict[str, int]) -> dict[str, int]:
        wanted = self._first("study_instance_uid")

        def query(chunk: Sequence[str]) -> Any:
            return (
                select(Study.study_instance_uid, Study.id, Patient.collection_id)
                .join(Patient, Patient.id == Study.patient_id)
                .where(Study.study_instance_uid.in_(chunk))
            )

        keys = sorted(wanted)
        found = _existing(self.session, query, keys)
        self._refuse_foreign("study", {k: v[1] for k, v in found.items()})
        values = {
            key: dict(
                patient_id=patients[r.patient_id],
                study_date=r.study_date,
                study_time=r.study_time,
                study_description=r.study_description,
                study_id=r.study_id,
                accession_number=r.accession_number,
                patient_age=r.patient_age,
            )
            for key, r in wanted.items()
        }
        return _upsert(
            self.session, Study, query, found, values, lambda k: {"study_instance_uid": k}
        )

    def _series(self, studies: dict[str, int]) -> dict[str, int]:
        wanted = self._first("series_instance_uid")

        def query(chunk: Sequence[str]) -> Any:
            return select(Series.series_instance_uid, Series.id, Series.collection_id).where(
                Series.series_instance_uid.in_(chunk)
            )

        keys = sorted(wanted)
        found = _existing(self.session, query, keys)
        self._refuse_foreign("series", {k: v[1] for k, v in found.items()})
        now = utcnow()
        values = {
            key: dict(
                study_id=studies[r.study_instance_uid],
                collection_id=self.collection_id,
                series_number=r.series_number,
                series_date=r.series_date,
                series_description=r.series_description,
                protocol_name=r.protocol_name,
                modality=r.modality,
                body_part_examined=r.body_part_examined,
                manufacturer=r.manufacturer,
                manufacturer_model_name=r.manufacturer_model_name,
                software_versions=r.software_versions,
                sop_class_uid=r.sop_class_uid,
                frame_of_reference_uid=r.frame_of_reference_uid,
                updated_at=now,
            )
            for key, r in wanted.items()
        }
        by_series = _upsert(
            self.session, Series, query, found, values, lambda k: {"series_instance_uid": k}
        )
        return {sop: by_series[record.series_instance_uid] for sop, record in self.records.items()}

    def _instances(self, series: dict[str, int]) -> set[int]:
        """Insert or update the instance rows; the series ids updated instances left."""

        def query(chunk: Sequence[str]) -> Any:
            return (
                select(Instance.sop_instance_uid, Instance.id, Series.collection_id, Series.id)
                .join(Series, Series.id == Instance.series_id)
                .where(Instance.sop_instance_uid.in_(chunk))
            )

        keys = [item.sop_instance_uid for item in self.items]
        found = _existing(self.session, query, keys)
        self._refuse_foreign("instance", {k: v[1] for k, v in found.items()})
        now = utcnow()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for item in self.items:
            record = self.records[item.sop_instance_uid]
            values = dict(
                series_id=series[item.sop_instance_uid],
                sop_class_uid=record.sop_class_uid,
                transfer_syntax_uid=item.transfer_syntax_uid,
                instance_number=record.instance_number,
                content_date=record.content_date,
                acquisition_date=record.acquisition_date,
                size=item.size,
                sha256=item.sha256,
                md5=item.md5,
                blob_key=item.blob_key,
                header=item.header,
                updated_at=now,
            )
            existing = found.get(item.sop_instance_uid)
            if existing is None:
                inserts.append({"sop_instance_uid": item.sop_instance_uid, **values})
            else:
                updates.append({"id": existing[0], **values})
        for chunk in _chunks(updates):
            _bulk_update(self.session, Instance, list(chunk))
        for chunk in _chunks(inserts):
            _bulk(self.session, Instance, list(chunk))
        return {int(row[2]) for row in found.values()}

    def _series_totals(self, series_ids: Sequence[int]) -> None:
        """Recount each touched series from its instance rows (never incrementally)."""
        for chunk in _chunks(series_ids):
            count = (
                select(func.count(Instance.id))
                .where(Instance.series_id == Series.id)
                .scalar_subquery()
            )
            total = (
                select(func.coalesce(func.sum(Instance.size), 0))
                .where(Instance.series_id == Series.id)
                .scalar_subquery()
            )
            self.session.execute(
                update(Series)
                .where(Series.id.in_(chunk))
                .values(instance_count=count, total_size=total)
                .execution_options(synchronize_session=False)
            )

    def _refuse_foreign(self, what: str, collections: dict[str, int]) -> None:
        foreign = sorted(uid for uid, cid in collections.items() if cid != self.collection_id)
        if foreign:
            raise Conflict(
                f"{len(foreign)} {what} UID(s) already published in another collection, "
                f"e.g. {foreign[0]}; nothing was published"
            )
