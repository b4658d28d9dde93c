"""The one intake service both adapters (STOW-RS and C-STORE) call.

An instance is spooled to a temporary file (hashing as it is written), parsed
and checked; accepted bytes are put into the blob store - durable and atomic -
*before* the database row that points at them commits, so anything
acknowledged to a sender survives a crash at any moment.  Refused instances
are quarantined with their bytes, except those outside the sender's scope,
which are not kept at all.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from dicomhub.context import IntakeContext
from dicomhub.core.auth import audit
from dicomhub.core.db import Instance, Patient, QuarantineState, Series, Site, Study, utcnow
from dicomhub.core.dicom.index import first, parse_date, text
from dicomhub.core.store.base import CHUNK_SIZE, blob_key_for, iter_source
from dicomhub.errors import ArchiveError, BadRequest, Forbidden, StorageError
from dicomhub.intake import checks, quarantine
from dicomhub.intake.origin import Origin
from dicomhub.intake.quarantine import DIMSE_STATUS, Held

LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 8
#: Spool files older than this are leftovers of a killed process (a live one is seconds old).
STALE_SPOOL_SECONDS = 6 * 3600
#: PS3.18 / PS3.4 warning status: the archive coerced (here: clipped or dropped) some values.
COERCION_WARNING = 0xB000


class Outcome(enum.StrEnum):
    """What happened to one instance."""

    STORED = "stored"
    REPLACED = "replaced"
    QUARANTINED = "quarantined"
    REFUSED = "refused"


@dataclass(frozen=True)
class Spooled:
    """Bytes written to a temporary file, with their hashes and size."""

    path: Path
    sha256: str
    size: int
    md5: str = ""


class Hasher:
    """SHA-256 and MD5 (the NBIA API reports MD5) and the size, fed chunk by chunk."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def spooled(self, path: Path) -> Spooled:
        return Spooled(path, self._sha256.hexdigest(), self.size, self._md5.hexdigest())


@dataclass(frozen=True)
class StoreResult:
    """The answer for one instance: what happened and the status each protocol reports."""

    outcome: Outcome
    status: int  # DIMSE status; also the STOW FailureReason when not stored
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    reason: str = ""
    detail: str = ""
    sha256: str = ""
    size: int = 0
    quarantine_id: int | None = None
    md5: str = ""
    series_instance_uid: str = ""
    #: Values the index had to clip or drop (the stored bytes are never changed).
    coerced: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.outcome in (Outcome.STORED, Outcome.REPLACED)

    @property
    def acknowledged_status(self) -> int:
        """The status a sender sees: success, or the coercion warning (also a success)."""
        if self.accepted and self.coerced:
            return COERCION_WARNING
        return self.status


@dataclass
class IntakeSession:
    """One sender's connection (an HTTP request or a DIMSE association) and its tallies."""

    origin: Origin
    stored: int = 0
    quarantined: int = 0
    refused: int = 0

    def count(self, result: StoreResult) -> StoreResult:
        if result.accepted:
            self.stored += 1
        elif result.outcome is Outcome.QUARANTINED:
            self.quarantined += 1
        else:
            self.refused += 1
        return result


Source = bytes | BinaryIO | Iterable[bytes] | Spooled


class IntakeService:
    """Receives instances for one intake context (database + blob store)."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context
        self.store_ = context.store
        self.spool_dir = Path(context.settings.data_dir) / "spool" / "intake"
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._sweep_spool()

    def _sweep_spool(self) -> None:
        """Remove spool files a killed process left; other live processes share the folder."""
        cutoff = time.time() - STALE_SPOOL_SECONDS
        for path in self.spool_dir.glob("in-*.part"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def open_session(self, origin: Origin) -> IntakeSession:
        """Start receiving from ``origin``."""
        return IntakeSession(origin)

    # -- spooling --------------------------------------------------------------

    def new_spool_file(self) -> tuple[BinaryIO, Path]:
        """A temporary file under the data dir (same filesystem as the store, usually)."""
        fd, name = tempfile.mkstemp(dir=self.spool_dir, prefix="in-", suffix=".part")
        return os.fdopen(fd, "w+b"), Path(name)

    def spool(self, source: bytes | BinaryIO | Iterable[bytes]) -> Spooled:
        """Write ``source`` to a spool file, hashing as it goes."""
        handle, path = self.new_spool_file()
        hasher = Hasher()
        try:
            with handle:
                for chunk in iter_source(source, CHUNK_SIZE):
                    hasher.update(chunk)
                    handle.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return hasher.spooled(path)

    # -- storing ---------------------------------------------------------------

    def store(
        self, session: IntakeSession, source: Source, *, study_uid: str | None = None
    ) -> StoreResult:
        """Check and store one instance; never raises for a bad instance, only answers.

        Parameters
        ----------
        session:
            From :meth:`open_session`.
        source:
            The Part 10 bytes (bytes, a file, chunks, or an already spooled file,
            which this call takes over and removes).
        study_uid:
            The study the sender addressed (STOW ``/studies/{uid}``); others are refused.
        """
        spooled = source if isinstance(source, Spooled) else self.spool(source)
        try:
            result = self._store(session.origin, spooled, study_uid, hold=True)
        except StorageError as exc:
            LOGGER.error("storage failed for %s: %s", session.origin.label, exc.message)
            result = StoreResult(Outcome.REFUSED, 0xA700, reason="storage", detail=exc.message)
        finally:
            spooled.path.unlink(missing_ok=True)
        return session.count(result)

    def _store(
        self, origin: Origin, spooled: Spooled, study_uid: str | None, *, hold: bool
    ) -> StoreResult:
        if spooled.size == 0:
            return StoreResult(Outcome.REFUSED, 0xC000, reason="unreadable", detail="empty part")
        parsed = checks.parse(spooled.path)
        if isinstance(parsed, Held):
            unreadable = Held(
                parsed.reason, parsed.detail, origin.collection or "", origin.site or ""
            )
            return self._hold(origin, spooled, unreadable, None, hold=hold)
        record = parsed.record
        ids: dict[str, Any] = {
            "sop_class_uid": record.sop_class_uid,
            "sop_instance_uid": record.sop_instance_uid,
            "study_instance_uid": record.study_instance_uid,
            "series_instance_uid": record.series_instance_uid,
        }
        try:
            checks.check_sop_class(parsed)
            if study_uid is not None and record.study_instance_uid != study_uid:
                raise BadRequest(
                    f"instance of study {record.study_instance_uid} sent to study {study_uid}",
                    detail={"failure": 0xA900},
                )
            collection, site = checks.placement(origin, parsed)
        except (BadRequest, Forbidden) as exc:
            status = int(exc.detail.get("failure", exc.dimse_status))
            return StoreResult(Outcome.REFUSED, status, reason=exc.code, detail=exc.message, **ids)
        with self.context.db.sessions() as db:
            site_row, unplaced = checks.check_place(db, collection, site)
            held: Held | None = checks.check_content(parsed) or unplaced
            if held is None:
                held = checks.check_provenance(db, parsed, collection, site)
            if held is None:
                held = checks.check_patient(checks.existing_instance(db, record), record)
        if held is not None or site_row is None:
            assert held is not None
            held = Held(
                held.reason, held.detail, collection, site,
                record.sop_instance_uid, record.patient_id, held.extra,
            )  # fmt: skip
            return self._hold(origin, spooled, held, ids, hold=hold)
        return self._accept(origin, spooled, parsed, site_row, ids, hold=hold)

    def _put(self, key: str, spooled: Spooled) -> None:
        """Durable, atomic put (skipped when the same content is already stored)."""
        try:
            if self.store_.exists(key) and self.store_.size(key) == spooled.size:
                return
            with open(spooled.path, "rb") as handle:
                info = self.store_.put(key, handle)
        except ArchiveError:
            raise
        except OSError as exc:
            raise StorageError(f"blob store write failed: {exc}") from exc
        if info.sha256 != spooled.sha256:
            raise StorageError("the spooled file changed while it was stored")

    def _hold(
        self,
        origin: Origin,
        spooled: Spooled,
        held: Held,
        ids: dict[str, Any] | None,
        *,
        hold: bool,
    ) -> StoreResult:
        ids = ids or {}
        status = DIMSE_STATUS[held.reason]
        if not hold:
            return StoreResult(
                Outcome.QUARANTINED, status, reason=held.reason.value, detail=held.detail,
                sha256=spooled.sha256, size=spooled.size, md5=spooled.md5, **ids,
            )  # fmt: skip
        key = quarantine.quarantine_key(spooled.sha256)
        self._put(key, spooled)
        with self.context.db.sessions() as db, db.begin():
            item = quarantine.record(
                db, held, blob_key=key, size=spooled.size, sha256=spooled.sha256,
                origin=origin.label,
            )  # fmt: skip
            item_id = item.id
        LOGGER.info("quarantined %s from %s: %s", ids.get("sop_instance_uid", "?"),
                    origin.label, held.reason.value)  # fmt: skip
        return StoreResult(
            Outcome.QUARANTINED, status, reason=held.reason.value, detail=held.detail,
            sha256=spooled.sha256, size=spooled.size, quarantine_id=item_id, md5=spooled.md5,
            **ids,
        )  # fmt: skip

    def _accept(
        self, origin: Origin, spooled: Spooled, parsed: checks.Parsed, site: Site,
        ids: dict[str, Any], *, hold: bool = True,
    ) -> StoreResult:  # fmt: skip
        key = blob_key_for(spooled.sha256)
        self._put(key, spooled)  # durable before the row commits
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.context.db.sessions() as db, db.begin():
                    old_key = _upsert(db, parsed, spooled, key, site, origin)
                    if isinstance(old_key, str) and old_key != key:
                        # A concurrent replacement may have just removed these very bytes
                        # (see _drop_blob); the row is locked now, so check and restore.
                        self._ensure_blob(key, spooled)
                break
            except (IntegrityError, OperationalError) as exc:
                # Two senders created the same patient/study/series at once (or SQLite
                # found its snapshot stale): retry after a short, jittered pause.
                if attempt == _ATTEMPTS:
                    raise StorageError(f"could not record the instance: {exc}") from exc
                time.sleep(random.uniform(0, 0.02 * attempt))
        if isinstance(old_key, Held):
            return self._hold(origin, spooled, old_key, ids, hold=hold)
        if old_key is not None and old_key != key:
            self._drop_blob(old_key, parsed.record.sop_instance_uid)
        outcome = Outcome.REPLACED if old_key is not None else Outcome.STORED
        return StoreResult(
            outcome, 0x0000, sha256=spooled.sha256, size=spooled.size, md5=spooled.md5,
            coerced=coercions(parsed), **ids,
        )  # fmt: skip

    def _ensure_blob(self, key: str, spooled: Spooled) -> None:
        if not self.store_.exists(key):
            with open(spooled.path, "rb") as handle:
                self.store_.put(key, handle)

    def _drop_blob(self, old_key: str, sop_instance_uid: str) -> None:
        """Delete a replaced blob unless a row points at it again.

        Bytes are content-addressed, so a sender re-sending the old version may have
        found the old blob in place and be about to commit a row pointing at it.  The
        check and the delete run while this instance's row is write-locked (a no-op
        UPDATE), and :meth:`_accept` checks its blob under the same lock, so one of
        the two always sees the other.
        """
        try:
            with self.context.db.sessions() as db, db.begin():
                db.execute(
                    update(Instance)
                    .where(Instance.sop_instance_uid == sop_instance_uid)
                    .values(blob_key=Instance.blob_key)
                )
                used = db.scalar(select(Instance.id).where(Instance.blob_key == old_key))
                if used is None:
                    self.store_.delete(old_key)
        except (ArchiveError, OSError, OperationalError) as exc:
            LOGGER.warning("could not remove the replaced blob %s: %s", old_key, exc)

    # -- quarantine release ------------------------------------------------------

    def release(self, item_id: int, *, actor: str, origin: str = "cli") -> StoreResult:
        """Run intake again on a held item's bytes (after a fix); released if accepted."""
        with self.context.db.sessions() as db:
            item = quarantine.get_item(db, item_id)
            if item.state is not QuarantineState.HELD:
                raise BadRequest(f"quarantine item {item_id} is {item.state.value}, not held")
            key, collection, site = item.blob_key, item.collection, item.site
        spooled = self.spool(self.store_.open(key))
        sender = Origin("release", actor, origin, collection or None, site or None)
        try:
            result = self._store(sender, spooled, None, hold=False)
        finally:
            spooled.path.unlink(missing_ok=True)
        with self.context.db.sessions() as db, db.begin():
            item = quarantine.get_item(db, item_id)
            if result.accepted:
                item.state = QuarantineState.RELEASED
            else:
                item.detail = f"release failed ({result.reason}): {result.detail}"[:4000]
            item.updated_at = utcnow()
            audit(db, actor, "quarantine.release", "quarantine_item", item_id, origin,
                  {"outcome": result.outcome.value, "reason": result.reason})  # fmt: skip
        if result.accepted:
            with contextlib.suppress(ArchiveError, OSError):
                self.store_.delete(key)
        return result


def _upsert(
    db: Session, parsed: checks.Parsed, spooled: Spooled, key: str, site: Site, origin: Origin
) -> str | Held | None:
    """Insert or replace the instance row (and its patient, study, series); the old blob key."""
    record = parsed.record
    # Take the write lock before reading anything: pysqlite runs SELECTs outside the
    # transaction, so without this a concurrent replacement could commit between our
    # read and our write (on PostgreSQL this locks the row, as FOR UPDATE does).
    db.execute(
        update(Instance)
        .where(Instance.sop_instance_uid == record.sop_instance_uid)
        .values(blob_key=Instance.blob_key)
        .execution_options(synchronize_session=False)
    )
    existing = checks.existing_instance(db, record, lock=True)
    conflict = checks.check_patient(existing, record)
    if conflict is not None:
        return Held(conflict.reason, conflict.detail, site.collection.name, site.name,
                    record.sop_instance_uid, record.patient_id)  # fmt: skip
    series = _series(db, parsed, site)
    now = utcnow()
    values = dict(
        sop_class_uid=record.sop_class_uid,
        transfer_syntax_uid=record.transfer_syntax_uid,
        instance_number=record.instance_number,
        content_date=record.content_date,
        acquisition_date=record.acquisition_date,
        size=spooled.size,
        sha256=spooled.sha256,
        md5=spooled.md5,
        blob_key=key,
        header=parsed.json,
    )
    if existing is None:
        db.add(Instance(series_id=series.id, sop_instance_uid=record.sop_instance_uid, **values))
        db.flush()
        db.execute(
            update(Series)
            .where(Series.id == series.id)
            .values(
                instance_count=Series.instance_count + 1,
                total_size=Series.total_size + spooled.size,
                updated_at=now,
            )
        )
        return None
    instance, _patient = existing
    old_key, old_size, old_series = instance.blob_key, instance.size, instance.series_id
    for name, value in values.items():
        setattr(instance, name, value)
    instance.series_id = series.id
    instance.updated_at = now
    db.execute(
        update(Series).where(Series.id == old_series)
        .values(instance_count=Series.instance_count - 1, total_size=Series.total_size - old_size)
    )  # fmt: skip
    db.execute(
        update(Series).where(Series.id == series.id)
        .values(instance_count=Series.instance_count + 1,
                total_size=Series.total_size + spooled.size, updated_at=now)
    )  # fmt: skip
    audit(db, origin.actor, "intake.replace", "instance", record.sop_instance_uid, origin.label,
          {"old_sha256": _sha_of(old_key), "new_sha256": spooled.sha256})  # fmt: skip
    return old_key


#: Search columns clipped to their column width: (tag, column width, name).
_CLIPPED = (
    ("00100010", 324, "PatientName"), ("00081030", 256, "StudyDescription"),
    ("0008103E", 256, "SeriesDescription"), ("00181030", 256, "ProtocolName"),
    ("00080070", 128, "Manufacturer"), ("00081090", 128, "ManufacturerModelName"),
    ("00181020", 256, "SoftwareVersions"), ("00080030", 32, "StudyTime"),
    ("00200010", 32, "StudyID"),
)  # fmt: skip
_DATES = (
    ("00080020", "StudyDate"), ("00080021", "SeriesDate"),
    ("00080022", "AcquisitionDate"), ("00080023", "ContentDate"),
)  # fmt: skip


def coercions(parsed: checks.Parsed) -> tuple[str, ...]:
    """The attributes whose indexed value differs from what was sent (clipped or dropped).

    The stored bytes and the header JSON keep what was sent; only the search
    columns are affected, which the sender hears about as a warning (0xB000).
    """
    header, found = parsed.json, []
    for tag, width, name in _CLIPPED:
        if len(text(header, tag, 1 << 16)) > width:
            found.append(name)
    for tag, name in _DATES:
        value = first(header, tag)
        if isinstance(value, str) and value.strip() and parse_date(value) is None:
            found.append(name)
    return tuple(found)


def _sha_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


def _series(db: Session, parsed: checks.Parsed, site: Site) -> Series:
    record = parsed.record
    patient = db.scalar(
        select(Patient).where(
            Patient.collection_id == site.collection_id, Patient.patient_id == record.patient_id
        )
    )
    if patient is None:
        patient = Patient(
            collection_id=site.collection_id, site_id=site.id, patient_id=record.patient_id,
            patient_name=record.patient_name, patient_sex=record.patient_sex,
            patient_age=record.patient_age, ethnic_group=record.ethnic_group,
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
    series = db.scalar(
        select(Series).where(Series.series_instance_uid == record.series_instance_uid)
    )
    if series is None:
        series = Series(
            study_id=study.id, collection_id=site.collection_id,
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
