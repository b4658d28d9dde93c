"""Recording accepted instances in the intake catalogue, a batch per transaction.

A STOW request's instances (or one C-STORE) are written in one transaction
with a handful of statements whatever the batch size: one read of the
instances already stored, one multi-row insert, one counter update per
series.  The patient, study and series rows a connection has seen are
remembered for it, so an association of thousands of instances looks each
series up once.  Any conflict between concurrent writers ends in an
IntegrityError (unique UIDs) or, on SQLite, a busy snapshot; the caller
retries the whole batch with a fresh cache.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.orm import Session

from dicomhub.core.auth import audit
from dicomhub.core.db import Instance, Patient, Series, Site, Study, utcnow
from dicomhub.intake import checks
from dicomhub.intake.origin import Origin
from dicomhub.intake.quarantine import Held


@dataclass(frozen=True)
class Entry:
    """One instance to record: its parsed header, hash, size and blob key."""

    parsed: checks.Parsed
    sha256: str
    size: int
    key: str


@dataclass(frozen=True)
class Written:
    """What recording one entry did: a new row, a replacement (the old key), or a conflict."""

    replaced_key: str | None = None
    replaced: bool = False
    conflict: Held | None = None


@dataclass
class SeriesCache:
    """Series UID -> row id for one connection; cleared when a transaction is retried."""

    ids: dict[str, int] = field(default_factory=dict)

    def clear(self) -> None:
        self.ids.clear()


_BUMP = (
    update(Series)
    .where(Series.id == bindparam("sid"))
    .values(
        instance_count=Series.instance_count + bindparam("n"),
        total_size=Series.total_size + bindparam("bytes"),
        updated_at=bindparam("now"),
    )
)
_REPLACE = (
    update(Instance)
    .where(Instance.id == bindparam("iid"))
    .values(
        series_id=bindparam("to_series"),
        sop_class_uid=bindparam("sop_class_uid"),
        transfer_syntax_uid=bindparam("transfer_syntax_uid"),
        instance_number=bindparam("instance_number"),
        content_date=bindparam("content_date"),
        acquisition_date=bindparam("acquisition_date"),
        size=bindparam("size"),
        sha256=bindparam("sha256"),
        md5=bindparam("md5"),
        blob_key=bindparam("blob_key"),
        header=bindparam("header", type_=Instance.__table__.c.header.type),
        updated_at=bindparam("now"),
    )
)


def write_batch(
    db: Session,
    place: checks.Place,
    entries: list[Entry],
    origin: Origin,
    cache: SeriesCache,
    *,
    ensure: Callable[[str], None],
    keep_same: bool = False,
) -> list[Written]:
    """Insert or replace each entry's instance row (and its patient, study, series).

    ``ensure(key)`` is called for each replacement while the row is locked: a
    concurrent replacement may have just removed those very (content-addressed)
    bytes, and the caller restores them.  With ``keep_same`` (a journal replayed
    after a crash) an instance already recorded with the same bytes is left as
    it is: it was recorded before the crash, and is no replacement.
    """
    connection = db.connection()
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # pysqlite runs SELECTs outside the transaction until the first write; take the
        # database's write lock first so what we read below cannot change under us.
        connection.execute(
            update(Site).where(Site.id == place.site_id).values(description=Site.description)
        )
    stored = checks.stored_instances(
        db, [e.parsed.record.sop_instance_uid for e in entries], lock=not sqlite
    )
    batch = _Batch(connection, utcnow())
    results: list[Written] = []
    for entry in entries:
        record = entry.parsed.record
        if record.sop_instance_uid in batch.pending:  # the same instance twice in one batch
            batch.flush()
            stored.update(checks.stored_instances(db, [record.sop_instance_uid]))
        old = stored.get(record.sop_instance_uid)
        conflict = checks.check_patient(old, record)
        if conflict is not None:
            results.append(Written(conflict=conflict))
            continue
        if keep_same and old is not None and old.blob_key == entry.key:
            results.append(Written())
            continue
        series_id = _series_id(db, entry.parsed, place, cache)
        values = _values(entry)
        if old is None:
            row = {**values, "series_id": series_id, "sop_instance_uid": record.sop_instance_uid}
            batch.insert(record.sop_instance_uid, row)
            batch.bump(series_id, 1, entry.size)
            results.append(Written())
            continue
        batch.replace({**values, "iid": old.id, "to_series": series_id})
        ensure(entry.key)
        batch.bump(old.series_id, -1, -old.size)
        batch.bump(series_id, 1, entry.size)
        stored[record.sop_instance_uid] = checks.Stored(
            old.id, entry.key, entry.size, series_id, record.patient_id
        )
        hashes = {"old_sha256": sha_of(old.blob_key), "new_sha256": entry.sha256}
        audit(db, origin.actor, "intake.replace", "instance", record.sop_instance_uid,
              origin.label, hashes)  # fmt: skip
        results.append(Written(replaced_key=old.blob_key, replaced=True))
    batch.flush()
    batch.finish()
    return results


class _Batch:
    """Pending multi-row statements of one batch."""

    def __init__(self, connection: Connection, now: Any) -> None:
        self.connection = connection
        self.now = now
        self.pending: dict[str, dict[str, Any]] = {}
        self.replacements: list[dict[str, Any]] = []
        self.deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0])

    def insert(self, uid: str, row: dict[str, Any]) -> None:
        self.pending[uid] = {**row, "created_at": self.now, "updated_at": self.now}

    def replace(self, row: dict[str, Any]) -> None:
        self.replacements.append({**row, "now": self.now})

    def bump(self, series_id: int, count: int, size: int) -> None:
        delta = self.deltas[series_id]
        delta[0] += count
        delta[1] += size

    def flush(self) -> None:
        """Write the pending inserts and replacements (counters wait for :meth:`finish`)."""
        if self.pending:
            self.connection.execute(insert(Instance), list(self.pending.values()))
            self.pending.clear()
        if self.replacements:
            self.connection.execute(_REPLACE, self.replacements)
            self.replacements.clear()

    def finish(self) -> None:
        rows = [
            {"sid": sid, "n": n, "bytes": size, "now": self.now}
            for sid, (n, size) in sorted(self.deltas.items())
            if n or size
        ]
        if rows:
            self.connection.execute(_BUMP, rows)


def _values(entry: Entry) -> dict[str, Any]:
    record = entry.parsed.record
    return {
        "sop_class_uid": record.sop_class_uid,
        "transfer_syntax_uid": record.transfer_syntax_uid,
        "instance_number": record.instance_number,
        "content_date": record.content_date,
        "acquisition_date": record.acquisition_date,
        "size": entry.size,
        "sha256": entry.sha256,
        "md5": "",  # intake keeps SHA-256 only; the public side computes MD5 for NBIA clients
        "blob_key": entry.key,
        "header": entry.parsed.json,
    }


def sha_of(key: str) -> str:
    """The SHA-256 a content-addressed key names."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


def _series_id(db: Session, parsed: checks.Parsed, place: checks.Place, cache: SeriesCache) -> int:
    record = parsed.record
    known = cache.ids.get(record.series_instance_uid)
    if known is not None:
        return known
    series = _series(db, parsed, place)
    cache.ids[record.series_instance_uid] = series.id
    return series.id


def _series(db: Session, parsed: checks.Parsed, place: checks.Place) -> Series:
    record = parsed.record
    series = db.scalar(
        select(Series).where(Series.series_instance_uid == record.series_instance_uid)
    )
    if series is not None:
        return series
    patient = db.scalar(
        select(Patient).where(
            Patient.collection_id == place.collection_id, Patient.patient_id == record.patient_id
        )
    )
    if patient is None:
        patient = Patient(
            collection_id=place.collection_id, site_id=place.site_id,
            patient_id=record.patient_id, patient_name=record.patient_name,
            patient_sex=record.patient_sex, patient_age=record.patient_age,
            ethnic_group=record.ethnic_group,
        )  # fmt: skip
        db.add(patient)
        db.flush()
    study = db.scalar(select(Study).where(Study.study_instance_uid == record.study_instance_uid))
    if study is None:
        study = Study(
            patient_id=patient.id, study_instance_uid=record.study_instance_uid,
            study_date=record.study_date, study_time=record.study_time,
            study_description=record.study_description, study_id=record.study_id,
            accession_number=record.accession_number, patient_age=record.patient_age,
        )  # fmt: skip
        db.add(study)
        db.flush()
    series = Series(
        study_id=study.id, collection_id=place.collection_id,
        series_instance_uid=record.series_instance_uid, series_number=record.series_number,
        series_date=record.series_date, series_description=record.series_description,
        protocol_name=record.protocol_name, modality=record.modality,
        body_part_examined=record.body_part_examined, manufacturer=record.manufacturer,
        manufacturer_model_name=record.manufacturer_model_name,
        software_versions=record.software_versions, sop_class_uid=record.sop_class_uid,
        frame_of_reference_uid=record.frame_of_reference_uid,
    )  # fmt: skip
    db.add(series)
    db.flush()
    return series
