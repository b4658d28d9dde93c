"""Recording journaled C-STORE instances in the background, many per transaction.

The handler has already checked each instance, made its bytes durable in the
journal and answered the sender; what is left - linking the bytes into the
blob store and committing the rows - is done here in batches (the same
:meth:`IntakeService.record` path STOW uses), so a long association costs one
commit per batch, not per instance.  Until its row commits an instance is in
the :class:`PendingView`, which the handler consults with the database, so a
second instance with the same SOP Instance UID and another Patient ID is
refused even before the first is recorded.  A failing database is retried
with a growing pause; the journal keeps the bytes meanwhile, and a backlog
that does not drain makes the handler answer "out of resources".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from dicomhub.intake.journal import Journal
from dicomhub.intake.service import Candidate, IntakeService, IntakeSession, Outcome

LOGGER = logging.getLogger(__name__)

#: Instances per transaction at most.
BATCH = 200
#: Answered but unrecorded instances beyond which a new one waits (then is refused).
BACKLOG = 2000
#: Seconds a batch waits for company before it is recorded.
LINGER = 0.05
#: A writer thread with nothing to do for this long ends (the next instance starts one).
IDLE_SECONDS = 2.0


@dataclass(frozen=True)
class Pending:
    """One answered instance waiting for its row: the association's session and the checks."""

    session: IntakeSession
    candidate: Candidate

    @property
    def uid(self) -> str:
        return self.candidate.parsed.record.sop_instance_uid


class PendingView:
    """SOP Instance UID -> Patient ID of the instances answered but not yet recorded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uids: dict[str, tuple[str, int]] = {}

    def claim(self, uid: str, patient_id: str) -> str | None:
        """Note ``uid`` as pending for ``patient_id``; or the other patient it is pending for."""
        with self._lock:
            held = self._uids.get(uid)
            if held is not None and held[0] != patient_id:
                return held[0]
            self._uids[uid] = (patient_id, (held[1] if held else 0) + 1)
            return None

    def drop(self, uid: str) -> None:
        """One pending instance of ``uid`` is recorded (or was not kept after all)."""
        with self._lock:
            held = self._uids.get(uid)
            if held is None:
                return
            if held[1] <= 1:
                del self._uids[uid]
            else:
                self._uids[uid] = (held[0], held[1] - 1)


class BatchWriter:
    """One background thread recording :class:`Pending` instances in batches."""

    def __init__(self, service: IntakeService, view: PendingView) -> None:
        self.service = service
        self.view = view
        self._cond = threading.Condition()
        self._queue: list[Pending] = []
        self._busy: list[Pending] = []
        self._thread: threading.Thread | None = None
        self._closing = False

    def submit(self, item: Pending, timeout: float = 60.0) -> bool:
        """Queue an instance; False if the backlog did not drain within ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self._queue) + len(self._busy) < BACKLOG, timeout
            ):
                return False
            self._queue.append(item)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="intake-journal-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return True

    def wait_for(self, session: IntakeSession | None = None, timeout: float = 120.0) -> bool:
        """Block until every instance of ``session`` (or all, for None) is recorded."""

        def done() -> bool:
            waiting = self._queue + self._busy
            return not any(session is None or p.session is session for p in waiting)

        with self._cond:
            return self._cond.wait_for(done, timeout)

    def close(self, timeout: float = 120.0) -> None:
        """Record what is queued, then stop; what cannot be recorded stays in the journal."""
        self.wait_for(None, timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._queue or self._closing, IDLE_SECONDS):
                    self._thread = None  # idle: the next submit starts a new thread
                    return
                if not self._queue:
                    self._thread = None
                    return
                # A moment for more to arrive: fewer, larger transactions cost less.
                self._cond.wait_for(lambda: len(self._queue) >= BATCH or self._closing, LINGER)
                self._busy, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            self._record(self._busy)
            with self._cond:
                self._busy = []
                self._cond.notify_all()

    def _record(self, items: list[Pending]) -> None:
        """Record a batch, one association at a time, retrying a failing database.

        A retry replays (an instance already recorded with the same bytes by the
        failed attempt is left alone, not recorded as its own replacement).
        """
        for group in by_session(items):
            pause, replay = 0.2, False
            while True:
                try:
                    record_pending(self.service, self.view, group, replay=replay)
                    break
                except Exception:
                    LOGGER.exception("recording %d journaled instances failed", len(group))
                    if self._closing:
                        LOGGER.error("%d instances stay in the journal for the next start",
                                     len(group))  # fmt: skip
                        break
                    time.sleep(pause)
                    pause, replay = min(pause * 2, 5.0), True


def by_session(items: list[Pending]) -> list[list[Pending]]:
    """Split a batch into one group per association, keeping each UID's arrival order.

    Groups are recorded one after another; should two associations send the
    same SOP Instance UID within one batch, the groups are cut there, so the
    later arrival is recorded later (and replaces the earlier one).
    """
    groups: list[list[Pending]] = []
    open_groups: dict[int, list[Pending]] = {}
    owner: dict[str, int] = {}
    for item in items:
        key = id(item.session)
        if owner.get(item.uid, key) != key:
            open_groups, owner = {}, {}  # a new round of groups, after all of these
        group = open_groups.get(key)
        if group is None:
            group = open_groups[key] = []
            groups.append(group)
        group.append(item)
        owner[item.uid] = key
    return groups


def record_pending(
    service: IntakeService, view: PendingView | None, group: list[Pending], *, replay: bool = False
) -> None:
    """Record one association's ``group`` (a transaction per place), then release the slots.

    Raises whatever the store or the database raised; nothing is released then.
    """
    results = service.record(group[0].session, [p.candidate for p in group], replay=replay)
    for item, result in zip(group, results, strict=True):
        if result.outcome is Outcome.QUARANTINED:
            LOGGER.warning(
                "%s was answered, then quarantined when recorded (%s): %s",
                item.uid, result.reason, result.detail,
            )  # fmt: skip
        Journal.release(item.candidate.spooled.path)
        if view is not None:
            view.drop(item.uid)
