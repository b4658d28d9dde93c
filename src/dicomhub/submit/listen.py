"""Receiving from the site's PACS: each C-STORE written durably into the spool and queued.

``dicomhub submit listen`` is a C-STORE SCP. Its DIMSE edge (pynetdicom) lives in the
CLI, because pynetdicom belongs to the server extra and this package imports without it;
the edge hands :meth:`Spool.store` the instance as received (Part 10 bytes) and answers
the peer with the status it gets back.

An instance is acknowledged (``0x0000``) only once its file is fsynced, renamed into the
spool, the spool folder fsynced and its row committed in the state database (synchronous
FULL), so a success the PACS saw is never lost. A full disk answers ``0xA700`` (Out of
Resources): the PACS keeps the instance and sends it again later.

Queued rows are ordinary ``seen`` rows of the pipeline's state database, so the same
de-identify → quarantine → send → verify path runs over them: continuously in the
listener (:class:`Runner`), or with ``dicomhub submit run`` once the listener stops.
The spool holds PHI and stays at the site; a copy is deleted once its instance is
verified at the intake (or was a duplicate), unless the site keeps them.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dicomhub.errors import ArchiveError
from dicomhub.submit import scan
from dicomhub.submit.kit import Kit
from dicomhub.submit.report import Summary
from dicomhub.submit.state import StateDB, StateError

LOGGER = logging.getLogger(__name__)

SUCCESS = 0x0000
#: Out of Resources (PS3.4 Table GG.4-1): the peer keeps the instance and retries.
OUT_OF_RESOURCES = 0xA700
#: Processing failure: anything else that kept the instance from being stored.
PROCESSING_FAILURE = 0x0110
SPOOL = "spool"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def spool_folder(work: Path) -> Path:
    """Where received instances wait (inside the work folder, so a scan never walks it)."""
    return work / SPOOL


def _safe(uid: str) -> str:
    return "".join(c for c in uid if c.isdigit() or c == ".")[:64] or "instance"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(target: Path, data: bytes) -> None:
    """Write ``data`` so that it survives a crash the moment this returns (mode 0600).

    Temp file, fsync, rename, fsync of the folder: a crash leaves the whole file or a
    hidden temp file, never a short one under the final name.
    """
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


class Spool:
    """The receiving end: durable files in the spool, rows in the state database.

    ``store`` is called from pynetdicom's association threads; the state connection is
    shared between them under a lock.
    """

    def __init__(self, work: Path, kit: Kit) -> None:
        self.folder = spool_folder(work)
        self.state = StateDB(work / "state.sqlite3", shared=True)
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()
        self.arrived = threading.Event()
        self.received = 0
        self.refused = 0
        try:
            self.state.bind(kit.kit_id, kit.recipe().recipe_hash())
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except BaseException:
            self.state.close()
            raise

    def close(self) -> None:
        with self._lock:
            self.state.close()

    def recover(self) -> int:
        """Queue files a killed listener renamed into place but never recorded."""
        added = adopt(self.folder, self.state, self._lock)
        if added:
            self.arrived.set()
        return added

    def store(self, data: bytes, sop_uid: str) -> int:
        """Keep one received instance; the DIMSE status to answer with."""
        uid = _safe(sop_uid)
        target = self.folder / uid[-2:] / f"{uid}-{secrets.token_hex(6)}.dcm"
        try:
            self._folder_for(target)
            write_durably(target, data)
        except OSError as exc:
            full = exc.errno in DISK_FULL
            return self._refuse(full, f"cannot write into the spool {self.folder}: {exc.strerror}")
        try:
            with self._lock:
                self.state.add_seen([(str(target), len(data))])
        except StateError as exc:
            target.unlink(missing_ok=True)
            return self._refuse("full" in exc.message, exc.message)
        self.received += 1
        self.arrived.set()
        return SUCCESS

    def _folder_for(self, target: Path) -> None:
        folder = target.parent
        if folder in self._dirs:
            return
        folder.mkdir(mode=0o700, exist_ok=True)
        _fsync_dir(folder.parent)  # the new folder's entry is durable before any file in it
        self._dirs.add(folder)

    def _refuse(self, full: bool, message: str) -> int:
        self.refused += 1
        if full:
            LOGGER.error("disk full, answering Out of Resources (the PACS keeps it): %s", message)
            return OUT_OF_RESOURCES
        LOGGER.error("instance not stored: %s", message)
        return PROCESSING_FAILURE

    def prune(self) -> int:
        """Delete spool copies of instances verified at the intake (or duplicates)."""
        with self._lock:
            paths = self.state.sources(("verified", "duplicate"), self.folder)
        removed = 0
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            removed += 1
        return removed


def adopt(folder: Path, state: StateDB, lock: threading.Lock | None = None) -> int:
    """Queue complete spool files that have no row (a crash between rename and commit);
    drop the temp files of writes that never finished. Returns how many were queued."""
    if not folder.is_dir():
        return 0
    for tmp in folder.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    if lock is None:
        return state.add_seen(scan.walk([folder]))
    with lock:
        return state.add_seen(scan.walk([folder]))


class Runner:
    """Runs the pipeline over what arrives, one cycle at a time, until stopped.

    A cycle starts once arrivals pause for ``settle`` seconds (a study comes as a burst)
    or ``max_wait`` after the first; a failed or incomplete cycle (intake unreachable,
    verification pending) is tried again after ``retry`` seconds. Everything a cycle
    does is resumable, so stopping between or during cycles loses nothing.
    """

    def __init__(
        self,
        spool: Spool,
        run_once: Callable[[], Summary],
        *,
        settle: float = 1.0,
        max_wait: float = 10.0,
        retry: float = 30.0,
        keep_sources: bool = False,
    ) -> None:
        self.spool = spool
        self.run_once = run_once
        self.settle, self.max_wait, self.retry = settle, max_wait, retry
        self.keep_sources = keep_sources
        self.stopping = threading.Event()
        self.last: Summary | None = None
        self.cycles = 0

    def stop(self) -> None:
        self.stopping.set()
        self.spool.arrived.set()

    def serve(self) -> None:
        """Cycle until :meth:`stop`; the first cycle takes what an earlier run left."""
        backlog = True
        while not self.stopping.is_set():
            if not backlog:
                self.spool.arrived.wait()
                if self.stopping.is_set():
                    break
                self._settle()
            self.spool.arrived.clear()
            backlog = not self.cycle() and not self.stopping.wait(self.retry)

    def _settle(self) -> None:
        deadline = time.monotonic() + self.max_wait
        while not self.stopping.is_set() and time.monotonic() < deadline:
            before = self.spool.received
            self.stopping.wait(self.settle)
            if self.spool.received == before:
                return

    def cycle(self) -> bool:
        """One pipeline run; True when everything received so far is done."""
        self.cycles += 1
        try:
            summary = self.run_once()
        except ArchiveError as exc:
            LOGGER.error("%s; trying again in %.0fs (nothing is lost)", exc.message, self.retry)
            return False
        self.last = summary
        if not self.keep_sources:
            self.spool.prune()
        LOGGER.info(
            "cycle %d: %d de-identified, %d sent, %d resent; stages %s",
            self.cycles, summary.deidentified_this_run, summary.sent_this_run, summary.resent,
            summary.stages,
        )  # fmt: skip
        return summary.complete
