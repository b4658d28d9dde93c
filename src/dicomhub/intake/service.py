"""The one intake service both adapters (STOW-RS and C-STORE) call.

Instances arrive in batches (a STOW request's parts; a single C-STORE is a
batch of one).  Each is spooled (hashed as it is written), parsed once and
checked; accepted bytes are made durable in the blob store - the fsyncs of a
batch side by side - *before* the one transaction that records the batch
commits, so anything acknowledged to a sender survives a crash at any
moment.  Refused instances are quarantined with their bytes, except those
outside the sender's scope, which are not kept at all.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from dicomhub.context import IntakeContext
from dicomhub.core.auth import audit
from dicomhub.core.db import Instance, QuarantineState, utcnow
from dicomhub.core.dicom.index import first, parse_date, text
from dicomhub.core.store.base import blob_key_for
from dicomhub.errors import ArchiveError, BadRequest, Forbidden, StorageError
from dicomhub.intake import checks, ledger, quarantine
from dicomhub.intake.origin import Origin
from dicomhub.intake.quarantine import DIMSE_STATUS, Held
from dicomhub.intake.spool import Hasher, Spool, Spooled

LOGGER = logging.getLogger(__name__)
_ATTEMPTS = 8
#: PS3.18 / PS3.4 warning status: the archive coerced (here: clipped or dropped) some values.
COERCION_WARNING = 0xB000

__all__ = [
    "COERCION_WARNING", "Candidate", "Hasher", "IntakeService", "IntakeSession", "Outcome",
    "Spooled", "StoreResult",
]  # fmt: skip


class Outcome(enum.StrEnum):
    """What happened to one instance."""

    STORED = "stored"
    REPLACED = "replaced"
    QUARANTINED = "quarantined"
    REFUSED = "refused"


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
    """One sender's connection (an HTTP request or a DIMSE association) and its tallies.

    It also remembers the places (collection, site, policy) and series rows it
    has seen, so a long association reads them once.
    """

    origin: Origin
    stored: int = 0
    quarantined: int = 0
    refused: int = 0
    places: dict[tuple[str, str], checks.Place] = field(default_factory=dict)
    series: ledger.SeriesCache = field(default_factory=ledger.SeriesCache)

    def count(self, result: StoreResult) -> StoreResult:
        if result.accepted:
            self.stored += 1
        elif result.outcome is Outcome.QUARANTINED:
            self.quarantined += 1
        else:
            self.refused += 1
        return result


Source = bytes | BinaryIO | Iterable[bytes] | Spooled


@dataclass(frozen=True)
class Candidate:
    """A parsed, placed instance that passed every check made before the transaction."""

    index: int
    spooled: Spooled
    parsed: checks.Parsed
    place: checks.Place
    ids: dict[str, Any]


class IntakeService:
    """Receives instances for one intake context (database + blob store)."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context
        self.store_ = context.store
        self.spool = Spool(context.store, Path(context.settings.data_dir) / "spool" / "intake")
        self.spool.sweep()

    def open_session(self, origin: Origin) -> IntakeSession:
        """Start receiving from ``origin``."""
        return IntakeSession(origin)

    def new_spool_file(self) -> tuple[BinaryIO, Path]:
        """An open spool file for an adapter that writes the bytes itself (STOW parts)."""
        return self.spool.new_file()

    # -- storing ---------------------------------------------------------------

    def store(
        self, session: IntakeSession, source: Source, *, study_uid: str | None = None
    ) -> StoreResult:
        """Check and store one instance; never raises for a bad instance, only answers."""
        return self.store_batch(session, [source], study_uid=study_uid)[0]

    def store_batch(
        self, session: IntakeSession, sources: Sequence[Source], *, study_uid: str | None = None
    ) -> list[StoreResult]:
        """Check and store several instances, recorded in one transaction.

        Parameters
        ----------
        session:
            From :meth:`open_session`.
        sources:
            Part 10 bytes (bytes, files, chunks, or already spooled files, which
            this call takes over and removes).
        study_uid:
            The study the sender addressed (STOW ``/studies/{uid}``); others are refused.
        """
        spooled: list[Spooled] = []
        try:
            for source in sources:
                spooled.append(source if isinstance(source, Spooled) else self.spool.write(source))
            try:
                results = self._batch(session, spooled, study_uid)
            except StorageError as exc:
                LOGGER.error("storage failed for %s: %s", session.origin.label, exc.message)
                results = [
                    StoreResult(Outcome.REFUSED, 0xA700, reason="storage", detail=exc.message)
                    for _ in spooled
                ]
        finally:
            for source in sources:
                if isinstance(source, Spooled):
                    source.path.unlink(missing_ok=True)
            for item in spooled:
                item.path.unlink(missing_ok=True)
        return [session.count(result) for result in results]

    def _batch(
        self, session: IntakeSession, spooled: list[Spooled], study_uid: str | None
    ) -> list[StoreResult]:
        results: list[StoreResult | None] = [None] * len(spooled)
        candidates: list[Candidate] = []
        for index, item in enumerate(spooled):
            examined = self._examine(session, item, study_uid, hold=True)
            if isinstance(examined, StoreResult):
                results[index] = examined
            else:
                candidates.append(Candidate(index, item, *examined))
        # A patient conflict is found inside the recording transaction (and the bytes
        # moved to the quarantine); no first look here, as conflicts are rare.
        for group in _by_place(candidates):
            for candidate, result in zip(group, self._accept(session, group), strict=True):
                results[candidate.index] = result
        return [result for result in results if result is not None]

    def _examine(
        self, session: IntakeSession, spooled: Spooled, study_uid: str | None, *, hold: bool
    ) -> StoreResult | tuple[checks.Parsed, checks.Place, dict[str, Any]]:
        """Parse and check one instance: a final answer, or what recording it needs.

        Without ``hold`` (a release from the quarantine) a refused instance is
        answered, not quarantined again.
        """
        origin = session.origin
        if spooled.size == 0:
            return StoreResult(Outcome.REFUSED, 0xC000, reason="unreadable", detail="empty part")
        parsed = checks.parse(spooled.path)
        if isinstance(parsed, Held):
            unreadable = Held(
                parsed.reason, parsed.detail, origin.collection or "", origin.site or ""
            )
            return self._hold(origin, spooled, unreadable, None, hold=hold)
        record = parsed.record
        ids = _ids(parsed)
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
        place = self._place(session, collection, site)
        held = checks.check_content(parsed) or place.unplaced
        if held is None:
            held = checks.check_provenance(parsed, place)
        if held is not None:
            held = Held(
                held.reason, held.detail, collection, site,
                record.sop_instance_uid, record.patient_id, held.extra,
            )  # fmt: skip
            return self._hold(origin, spooled, held, ids, hold=hold)
        return parsed, place, ids

    def _place(self, session: IntakeSession, collection: str, site: str) -> checks.Place:
        place = session.places.get((collection, site))
        if place is None:
            with self.context.db.sessions() as db:
                place = checks.load_place(db, collection, site)
            if place.unplaced is None:  # an unknown place may be registered any moment
                session.places[(collection, site)] = place
        return place

    def _accept(
        self, session: IntakeSession, group: list[Candidate], *, keep_same: bool = False
    ) -> list[StoreResult]:
        """Make the group's bytes durable, then record it in one transaction (retried).

        ``keep_same``: a replayed journal; an instance already recorded with the
        same bytes is left alone (see :func:`ledger.write_batch`).
        """
        origin, place = session.origin, group[0].place
        entries = [
            ledger.Entry(c.parsed, c.spooled.sha256, c.spooled.size, blob_key_for(c.spooled.sha256))
            for c in group
        ]
        files = {entry.key: c.spooled.path for entry, c in zip(entries, group, strict=True)}
        self._adopt(list(files.items()))  # durable before the rows commit
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self.context.db.sessions() as db, db.begin():
                    written = ledger.write_batch(
                        db, place, entries, origin, session.series,
                        ensure=lambda key: self._ensure_blob(key, files[key]),
                        keep_same=keep_same,
                    )  # fmt: skip
                break
            except (IntegrityError, OperationalError) as exc:
                # Two senders created the same patient/study/series or instance at once
                # (or SQLite found its snapshot stale): retry after a short, jittered pause.
                session.series.clear()
                if attempt == _ATTEMPTS:
                    raise StorageError(f"could not record the instances: {exc}") from exc
                time.sleep(random.uniform(0, 0.02 * attempt))
        results = []
        for candidate, entry, done in zip(group, entries, written, strict=True):
            results.append(self._answer(origin, candidate, entry, done))
        return results

    def _answer(
        self, origin: Origin, candidate: Candidate, entry: ledger.Entry, done: ledger.Written
    ) -> StoreResult:
        spooled, ids = candidate.spooled, candidate.ids
        if done.conflict is not None:
            # Another sender stored this UID for another patient since our first look.
            self._drop_blob(entry.key, candidate.parsed.record.sop_instance_uid)
            return self._hold_candidate(origin, candidate, done.conflict)
        if done.replaced_key is not None and done.replaced_key != entry.key:
            self._drop_blob(done.replaced_key, candidate.parsed.record.sop_instance_uid)
        outcome = Outcome.REPLACED if done.replaced else Outcome.STORED
        return StoreResult(
            outcome, 0x0000, sha256=spooled.sha256, size=spooled.size,
            coerced=coercions(candidate.parsed), **ids,
        )  # fmt: skip

    def _adopt(self, files: list[tuple[str, Path]]) -> None:
        try:
            self.store_.adopt(files)
        except ArchiveError:
            raise
        except OSError as exc:
            raise StorageError(f"blob store write failed: {exc}") from exc

    def _ensure_blob(self, key: str, path: Path) -> None:
        """Called under the instance's row lock: restore bytes a concurrent replacement removed."""
        if not self.store_.exists(key):
            self._adopt([(key, path)])

    def _drop_blob(self, old_key: str, sop_instance_uid: str) -> None:
        """Delete a replaced blob unless a row points at it again.

        Bytes are content-addressed, so a sender re-sending the old version may have
        found the old blob in place and be about to commit a row pointing at it.  The
        check and the delete run while this instance's row is write-locked (a no-op
        UPDATE), and the ledger checks its blob under the same lock, so one of the
        two always sees the other.
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

    # -- checked now, recorded later (the C-STORE journal) ------------------------

    def examine(self, session: IntakeSession, spooled: Spooled) -> StoreResult | Candidate:
        """Parse and check one instance before answering; what fails is answered (and held).

        The bytes stay where they are; a :class:`Candidate` is recorded later by
        :meth:`record`.  The patient conflict is the caller's to check.
        """
        examined = self._examine(session, spooled, None, hold=True)
        if isinstance(examined, StoreResult):
            return examined
        return Candidate(0, spooled, *examined)

    def hold_conflict(
        self, session: IntakeSession, candidate: Candidate, held: Held
    ) -> StoreResult:
        """Quarantine a checked instance whose SOP Instance UID belongs to another patient."""
        return self._hold_candidate(session.origin, candidate, held)

    def record(
        self, session: IntakeSession, candidates: list[Candidate], *, replay: bool = False
    ) -> list[StoreResult]:
        """Make checked instances durable in the store and record them, in their order.

        Unlike :meth:`store_batch` the files are left to the caller, and a
        failing database raises :class:`StorageError`, so nothing answered is
        dropped: the caller keeps the files and tries again.  ``replay`` marks a
        journal replayed after a crash (idempotent: see :func:`ledger.write_batch`).
        """
        found: dict[int, StoreResult] = {}
        numbered = [replace(c, index=i) for i, c in enumerate(candidates)]
        for group in _by_place(numbered):
            for candidate, result in zip(
                group, self._accept(session, group, keep_same=replay), strict=True
            ):
                found[candidate.index] = result
        return [found[i] for i in range(len(numbered))]

    # -- quarantine --------------------------------------------------------------

    def _hold_candidate(self, origin: Origin, candidate: Candidate, conflict: Held) -> StoreResult:
        place, record = candidate.place, candidate.parsed.record
        held = Held(
            conflict.reason, conflict.detail, place.collection, place.site,
            record.sop_instance_uid, record.patient_id, conflict.extra,
        )  # fmt: skip
        return self._hold(origin, candidate.spooled, held, candidate.ids, hold=True)

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
                sha256=spooled.sha256, size=spooled.size, **ids,
            )  # fmt: skip
        key = quarantine.quarantine_key(spooled.sha256)
        self._adopt([(key, spooled.path)])
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
            sha256=spooled.sha256, size=spooled.size, quarantine_id=item_id, **ids,
        )  # fmt: skip

    def release(self, item_id: int, *, actor: str, origin: str = "cli") -> StoreResult:
        """Run intake again on a held item's bytes (after a fix); released if accepted."""
        with self.context.db.sessions() as db:
            item = quarantine.get_item(db, item_id)
            if item.state is not QuarantineState.HELD:
                raise BadRequest(f"quarantine item {item_id} is {item.state.value}, not held")
            key, collection, site = item.blob_key, item.collection, item.site
        spooled = self.spool.write(self.store_.open(key))
        sender = Origin("release", actor, origin, collection or None, site or None)
        try:
            result = self._release(self.open_session(sender), spooled)
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
            db.flush()
            # Identical bytes held twice share one key: the other item still needs them.
            still_held = quarantine.shared(db, item)
        if result.accepted and not still_held:
            with contextlib.suppress(ArchiveError, OSError):
                self.store_.delete(key)
        return result

    def _release(self, session: IntakeSession, spooled: Spooled) -> StoreResult:
        """Intake once more without holding again: a refusal leaves the item as it is."""
        examined = self._examine(session, spooled, None, hold=False)
        if isinstance(examined, StoreResult):
            return examined
        parsed, place, ids = examined
        with self.context.db.sessions() as db:
            stored = checks.stored_instances(db, [parsed.record.sop_instance_uid])
        held = checks.check_patient(stored.get(parsed.record.sop_instance_uid), parsed.record)
        if held is not None:
            return self._hold(session.origin, spooled, held, ids, hold=False)
        return self._accept(session, [Candidate(0, spooled, parsed, place, ids)])[0]


def _ids(parsed: checks.Parsed) -> dict[str, Any]:
    record = parsed.record
    return {
        "sop_class_uid": record.sop_class_uid,
        "sop_instance_uid": record.sop_instance_uid,
        "study_instance_uid": record.study_instance_uid,
        "series_instance_uid": record.series_instance_uid,
    }


def _by_place(candidates: list[Candidate]) -> list[list[Candidate]]:
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in candidates:
        key = (candidate.place.collection, candidate.place.site)
        groups.setdefault(key, []).append(candidate)
    return list(groups.values())


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
