"""C-STORE intake through the write-ahead journal: check, journal, answer, record later.

For each instance the handler writes the bytes into a journal slot and starts
its ``fsync`` on a helper thread, parses and checks the instance meanwhile
(the same checks as every intake, plus the patient check against the
database *and* the instances answered but not yet recorded), waits for the
``fsync`` and answers.  A refusal or a quarantine is answered as before,
synchronously; an accepted instance goes to the :class:`BatchWriter`.

What an answer promises: success means the bytes and their mark are durable
in the journal, so a ``kill -9`` at any later moment loses nothing - the next
start replays the journal (:func:`recover`) before it listens.  One case is
only found when recording: another sender (a STOW request, another process)
committing the same SOP Instance UID for another patient between the answer
and the commit; that instance is then quarantined with its bytes, as any
conflict is, and logged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection

from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.intake import checks
from dicomhub.intake.journal import Journal, marked_entries, orphaned, remove_folder
from dicomhub.intake.service import (
    Candidate,
    IntakeService,
    IntakeSession,
    Outcome,
    StoreResult,
    coercions,
)
from dicomhub.intake.writer import BatchWriter, Pending, PendingView, record_pending

LOGGER = logging.getLogger(__name__)
#: The Patient ID an instance is stored for (the first look of the patient check), as
#: driver SQL: it runs for every instance, and compiling and processing a Core
#: statement cost several times what the query does.  ``{uid}`` is the parameter.
_PATIENT_OF = (
    "SELECT p.patient_id FROM instance i JOIN series s ON i.series_id = s.id"
    " JOIN study st ON s.study_id = st.id JOIN patient p ON st.patient_id = p.id"
    " WHERE i.sop_instance_uid = {uid}"
)
#: Concurrent fsyncs (one per association being answered).
_SYNC_THREADS = 4


def journal_root(service: IntakeService) -> Path:
    """Beside the blobs when the store is a local folder (a slot becomes its blob by a link)."""
    store = service.store_
    if isinstance(store, FilesystemStore):
        return store.root / ".journal"
    return Path(service.context.settings.data_dir) / "journal" / "intake"


class JournaledIntake:
    """The journaled C-STORE path for one listener."""

    def __init__(self, service: IntakeService, root: Path) -> None:
        self.service = service
        recover(service, root)
        self.journal = Journal(root)
        self.view = PendingView()
        self.writer = BatchWriter(service, self.view)
        self._sync = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="intake-journal-sync")
        self._lock = threading.Lock()
        self._lookups: dict[int, Connection] = {}

    def store(self, session: IntakeSession, pieces: Sequence[bytes | memoryview]) -> StoreResult:
        """Check and journal one instance; the answer is final, the row follows."""
        spooled, fd = self.journal.write(pieces, session.origin)
        synced = self._sync.submit(Journal.sync, fd)
        try:
            examined = self.service.examine(session, spooled)
            if isinstance(examined, StoreResult):  # refused, or held (with a copy of its bytes)
                _settle(synced)
                Journal.release(spooled.path)
                return session.count(examined)
            result = self._answer(session, examined, synced)
        except BaseException:
            _settle(synced)
            Journal.release(spooled.path)
            raise
        return session.count(result)

    def _answer(
        self, session: IntakeSession, candidate: Candidate, synced: Future[None]
    ) -> StoreResult:
        record = candidate.parsed.record
        uid = record.sop_instance_uid
        other = self.view.claim(uid, record.patient_id)
        if other is not None:
            return self._conflict(session, candidate, synced, other)
        queued = False
        try:
            other = self._stored_patient(session, uid, record.patient_id)
            if other is None:
                synced.result()  # an fsync that failed raises: answered "out of resources"
                queued = self.writer.submit(Pending(session, candidate))
        except BaseException:
            self.view.drop(uid)
            raise
        if other is not None:
            self.view.drop(uid)
            return self._conflict(session, candidate, synced, other)
        if not queued:
            self.view.drop(uid)
            Journal.release(candidate.spooled.path)
            detail = "the intake database is not keeping up; try again later"
            return StoreResult(Outcome.REFUSED, 0xA700, reason="storage", detail=detail)
        spooled = candidate.spooled
        return StoreResult(
            Outcome.STORED, 0x0000, sha256=spooled.sha256, size=spooled.size,
            coerced=coercions(candidate.parsed), sop_class_uid=record.sop_class_uid,
            sop_instance_uid=uid, study_instance_uid=record.study_instance_uid,
            series_instance_uid=record.series_instance_uid,
        )  # fmt: skip

    def _conflict(
        self, session: IntakeSession, candidate: Candidate, synced: Future[None], other: str
    ) -> StoreResult:
        """Quarantine an instance whose UID is stored (or pending) for patient ``other``."""
        held = checks.check_patient(checks.Stored(0, "", 0, 0, other), candidate.parsed.record)
        assert held is not None  # the patients differ
        _settle(synced)
        Journal.unmark(candidate.spooled.path)  # held now, not to be replayed as accepted
        result = self.service.hold_conflict(session, candidate, held)
        Journal.release(candidate.spooled.path)
        return result

    def _stored_patient(self, session: IntakeSession, uid: str, patient_id: str) -> str | None:
        """The other Patient ID the catalogue holds ``uid`` for, if any.

        Asked once per instance, so each association keeps one autocommit
        connection for it (a session and a transaction per question cost more
        than the question); :meth:`forget` closes it with the association.
        """
        key = id(session)
        with self._lock:
            connection = self._lookups.get(key)
        if connection is None:
            engine = self.service.context.db.engine
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with self._lock:
                self._lookups[key] = connection
        sql = _PATIENT_OF.format(uid=":uid" if connection.dialect.name == "sqlite" else "%(uid)s")
        try:
            found = connection.exec_driver_sql(sql, {"uid": uid}).scalar()
        except Exception:
            self.forget(session)  # a fresh connection for the next instance
            raise
        return None if found is None or found == patient_id else str(found)

    def forget(self, session: IntakeSession) -> None:
        """The association ended: close its lookup connection."""
        with self._lock:
            connection = self._lookups.pop(id(session), None)
        if connection is not None:
            connection.close()

    def wait_for(self, session: IntakeSession) -> None:
        """Block until the association's instances are recorded (asked before its release)."""
        if not self.writer.wait_for(session):
            LOGGER.warning("%s: instances still being recorded at release", session.origin.label)

    def close(self) -> None:
        """Record what is queued, then stop; anything left is replayed at the next start."""
        self.writer.close()
        self._sync.shutdown(wait=True)
        self.journal.close()
        with self._lock:
            connections, self._lookups = list(self._lookups.values()), {}
        for connection in connections:
            connection.close()


def _settle(synced: Future[None]) -> None:
    """Wait for a slot's fsync we no longer need (its descriptor must close first)."""
    with contextlib.suppress(OSError):
        synced.result()


def recover(service: IntakeService, root: Path) -> int:
    """Replay the journals of listeners that died; returns how many instances were replayed.

    Each marked slot runs through intake again: the checks, then recording
    with replay semantics (an instance already recorded with the same bytes
    is left alone).  Slots without a valid mark were never answered and are
    dropped.  The folder goes once all of it is recorded; if the database
    fails, the error propagates and the folder stays for the next start.
    """
    replayed = 0
    with orphaned(root) as folders:
        for folder in folders:
            entries, dropped = marked_entries(folder)
            sessions: dict[object, IntakeSession] = {}
            pending: list[Pending] = []
            for entry in entries:
                session = sessions.setdefault(entry.origin, service.open_session(entry.origin))
                examined = service.examine(session, entry.spooled)
                if isinstance(examined, StoreResult):
                    Journal.release(entry.spooled.path)
                else:
                    pending.append(Pending(session, examined))
            for session in sessions.values():
                group = [p for p in pending if p.session is session]
                for start in range(0, len(group), 200):
                    record_pending(service, None, group[start : start + 200], replay=True)
            replayed += len(entries)
            LOGGER.warning(
                "replayed %d journaled instance(s) from %s (%d incomplete slot(s) dropped)",
                len(entries), folder.name, dropped,
            )  # fmt: skip
            remove_folder(folder)
    return replayed
