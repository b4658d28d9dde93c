"""The C-STORE write-ahead journal: one fsync between the bytes arriving and the answer.

A storescu association sends one instance, waits for its answer, then sends
the next, so whatever stands between receiving and answering is paid once
per instance.  The journal cuts that to a single ``fsync``: the bytes go
into a *slot*, an empty file created ahead of time in a batch whose folder
was fsynced once (so the slot's name is already durable), and a mark - an
extended attribute holding the SHA-256, the size and the sender - is set
before that one ``fsync``, which makes the bytes, the size and the mark
durable together.  The row is recorded later, in a batch, by
:mod:`dicomhub.intake.writer`; the slot file itself becomes the blob (a
hard link), so the bytes are written once.

Each listener owns one folder under the journal root and holds an exclusive
``flock`` on it while it lives.  A folder whose lock can be taken belongs to
a process that died: :func:`orphaned` finds it and :func:`marked_entries`
reads what it holds.  A slot is replayed only if its mark is present and the
bytes match the SHA-256 in it; anything else was never answered (the answer
comes after the ``fsync``) and is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dicomhub.intake.origin import Origin
from dicomhub.intake.spool import Spooled

LOGGER = logging.getLogger(__name__)

#: The extended attribute marking a slot whose bytes are complete.
MARK = "user.dicomhub.journal"
#: Slots created per batch (one folder fsync each).
SLOTS_PER_BATCH = 64
_LOCK = "lock"


@dataclass(frozen=True)
class Entry:
    """A marked slot: its bytes (as a spooled file) and the sender they came from."""

    spooled: Spooled
    origin: Origin
    seq: int = 0  # when it was written: replay keeps the arrival order


class Unsupported(OSError):
    """The journal's filesystem has no user extended attributes (e.g. an old tmpfs)."""


class Journal:
    """This process's journal folder: slots handed out, marked, synced and released."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.folder = root / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.folder.mkdir()
        self._slots: list[Path] = []
        self._mutex = threading.Lock()
        self._lock_fd = os.open(self.folder / _LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            os.setxattr(self._lock_fd, MARK, b"probe")
            os.removexattr(self._lock_fd, MARK)
        except OSError as exc:
            self.close()
            raise Unsupported(exc.errno, f"no extended attributes in {root}: {exc}") from exc
        _fsync_path(self.folder)
        _fsync_path(root)

    def _slot(self) -> Path:
        with self._mutex:
            if not self._slots:
                self._slots = [self._new_slot() for _ in range(SLOTS_PER_BATCH)]
                _fsync_path(self.folder)  # the batch's names, durable at once
            return self._slots.pop()

    def _new_slot(self) -> Path:
        path = self.folder / f"{secrets.token_hex(8)}.dcm"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        return path

    def write(self, pieces: Sequence[bytes | memoryview], origin: Origin) -> tuple[Spooled, int]:
        """Write ``pieces`` into a fresh slot and mark it; the caller then calls :meth:`sync`.

        Returns the slot as a spooled file and its open descriptor.  The mark is
        set before the sync so one ``fsync`` makes bytes and mark durable together.
        """
        path = self._slot()
        fd = os.open(path, os.O_WRONLY)
        try:
            digest, size = hashlib.sha256(), 0
            for piece in pieces:
                digest.update(piece)
                view = memoryview(piece)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                size += len(piece)
            sha256 = digest.hexdigest()
            os.setxattr(fd, MARK, _mark(sha256, size, origin))
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return Spooled(path, sha256, size), fd

    @staticmethod
    def sync(fd: int) -> None:
        """Make a written slot durable (bytes, size and mark) and close it."""
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def release(path: Path) -> None:
        """Drop a slot whose instance is recorded (or was answered with a refusal).

        The mark goes first: the slot's inode may now be a blob in the store,
        which should not carry it.  A release lost to a power cut is harmless:
        replaying a recorded instance changes nothing.
        """
        with contextlib.suppress(OSError):
            os.removexattr(path, MARK)
        path.unlink(missing_ok=True)

    @staticmethod
    def unmark(path: Path) -> None:
        """Take the mark off a slot being quarantined, so a restart does not replay it."""
        with contextlib.suppress(OSError):
            os.removexattr(path, MARK)

    def close(self) -> None:
        """Remove the unused slots and, if nothing is left to record, the folder."""
        with self._mutex:
            for path in self._slots:
                path.unlink(missing_ok=True)
            self._slots = []
        left = [p for p in self.folder.iterdir() if p.name != _LOCK]
        if not left:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock_fd)


def _mark(sha256: str, size: int, origin: Origin) -> bytes:
    fields = {
        "seq": time.time_ns(), "sha256": sha256, "size": size,
        "kind": origin.kind, "actor": origin.actor, "address": origin.address,
        "collection": origin.collection, "site": origin.site,
    }  # fmt: skip
    return json.dumps(fields, separators=(",", ":")).encode()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def orphaned(root: Path) -> Iterator[list[Path]]:
    """The journal folders under ``root`` whose owner died, locked while the caller replays.

    A live listener holds its folder's lock, so its slots are never touched.
    """
    held: list[tuple[Path, int]] = []
    try:
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            lock = folder / _LOCK
            if not folder.is_dir():
                continue
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                continue
            held.append((folder, fd))
        yield [folder for folder, _ in held]
    finally:
        for _, fd in held:
            os.close(fd)


def marked_entries(folder: Path) -> tuple[list[Entry], int]:
    """The complete, marked slots of a dead listener's folder; the rest is deleted.

    Returns the entries and how many slots were dropped (unused, cut short, or
    not matching their mark: none of those was ever answered).
    """
    entries, dropped = [], 0
    for path in sorted(folder.glob("*.dcm")):
        entry = _entry(path)
        if entry is not None:
            entries.append(entry)
            continue
        with contextlib.suppress(OSError):
            dropped += 1 if path.stat().st_size else 0  # an unused slot is empty
            path.unlink()
    return sorted(entries, key=lambda entry: entry.seq), dropped


def _entry(path: Path) -> Entry | None:
    try:
        fields = json.loads(os.getxattr(path, MARK))
    except (OSError, ValueError):
        return None
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != fields.get("sha256") or size != fields.get("size"):
        LOGGER.warning("journal slot %s does not match its mark; dropped", path)
        return None
    origin = Origin(
        str(fields.get("kind") or "dimse"), str(fields.get("actor") or ""),
        str(fields.get("address") or ""), fields.get("collection"), fields.get("site"),
    )  # fmt: skip
    return Entry(Spooled(path, digest.hexdigest(), size), origin, int(fields.get("seq") or 0))


def remove_folder(folder: Path) -> None:
    """Remove a replayed folder once every entry in it is recorded."""
    shutil.rmtree(folder, ignore_errors=True)
