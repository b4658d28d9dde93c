"""Fetch many series in one request from a dicomhub server: one tar, sha256 per file.

A dicomhub server answers ``POST /api/download/stream`` with an uncompressed
tar of the series asked for: each series' files (``<uid>/00000001.dcm``…),
then ``<uid>/index.csv`` naming every file with its size, SHA-256 and MD5.
The tar is read as it arrives, 512-byte block by block; each file is written
under ``<name>.part`` while its SHA-256 is computed.  When a series' index
arrives every file is checked against it (names, sizes, SHA-256; none missing,
none extra), renamed, and the verified series is handed to the run at once,
so what finished survives a broken stream or a kill.

Series the stream did not complete are asked for again (with backoff) in a
smaller request; a series the server left out of a complete stream is not
visible to the caller (any more).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import logging
import os
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dicomhub.download.client import RetryPolicy, Server, ServerError, Transient, describe
from dicomhub.download.fetch import (
    MD5_LIST,
    Corrupt,
    Failed,
    Fetched,
    Job,
    Stopped,
    clear_folder,
    entry_name,
    final_name,
)
from dicomhub.download.layout import Layout, safe_component
from dicomhub.download.state import DENIED, FAILED, UNKNOWN, DiskFull
from dicomhub.errors import Forbidden, NotFound

LOGGER = logging.getLogger(__name__)

INDEX_NAME = "index.csv"
BLOCK = tarfile.BLOCKSIZE
CHUNK = 256 * 1024
#: Largest index accepted (a series of ~100,000 files).
MAX_INDEX = 32 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

Deliver = Callable[[Fetched | Failed], None]


class _Reader:
    """Exact reads over a response's byte iterator, holding at most one chunk."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buffer = self._buffer[self._offset :] + chunk
                self._offset = 0
                return True
        return False

    def pieces(self, size: int) -> Iterator[bytes]:
        """Exactly ``size`` bytes, in pieces; Corrupt if the stream ends first."""
        left = size
        while left > 0:
            if self._offset >= len(self._buffer) and not self._fill():
                raise Corrupt("the stream ended inside a file")
            take = min(left, len(self._buffer) - self._offset)
            yield self._buffer[self._offset : self._offset + take]
            self._offset += take
            left -= take

    def read(self, size: int) -> bytes:
        return b"".join(self.pieces(size))

    def at_end(self) -> bool:
        return self._offset >= len(self._buffer) and not self._fill()


@dataclass
class _Open:
    """A series being received: its job, staging folder and the files so far."""

    job: Job
    folder: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    nbytes: int = 0
    failed: str = ""


@dataclass
class BulkFetcher:
    """Shared by every worker thread of one run against a dicomhub server."""

    server: Server
    staging: Path
    layout: Layout
    policy: RetryPolicy
    stop: threading.Event
    on_bytes: Callable[[int], None] = lambda n: None

    def fetch(self, jobs: Sequence[Job], deliver: Deliver) -> None:
        """Fetch ``jobs``, handing each series to ``deliver`` as soon as it is settled.

        Raises only what must stop the whole run (a full disk, a refused
        credential, the run stopping); everything else ends up delivered.
        """
        todo = {job.uid: job for job in jobs}
        attempts = dict.fromkeys(todo, 0)
        last: dict[str, str] = {}
        for attempt in range(self.policy.retries + 1):
            if not todo:
                return
            if self.stop.is_set():
                raise Stopped
            for uid in todo:
                attempts[uid] += 1
            try:
                complete = self._attempt(list(todo.values()), todo, last, deliver)
            except (Transient, httpx.TransportError) as exc:
                message = describe(exc)
                LOGGER.info("stream of %d series, attempt %d: %s", len(todo), attempt + 1, message)
                for uid in todo:
                    last.setdefault(uid, message)
            except (NotFound, Forbidden, ServerError) as exc:
                status = DENIED if isinstance(exc, Forbidden) else FAILED
                for uid in list(todo):
                    deliver(Failed(uid, status, exc.message, attempts[uid]))
                return
            else:
                if complete:  # series the server left out: not visible (any more)
                    for uid in [u for u in todo if u not in last]:
                        del todo[uid]
                        deliver(Failed(uid, UNKNOWN, "not on the server, or not visible to you",
                                       attempts[uid]))  # fmt: skip
            more = todo and attempt < self.policy.retries
            if more and self.stop.wait(self.policy.delay(attempt)):
                raise Stopped
        for uid in list(todo):
            message = last.get(uid, "the stream did not complete")
            deliver(Failed(uid, FAILED, f"{message} (after {attempts[uid]} attempts)",
                           attempts[uid]))  # fmt: skip

    def _attempt(
        self, jobs: list[Job], todo: dict[str, Job], last: dict[str, str], deliver: Deliver
    ) -> bool:
        """One request; True if the tar arrived whole (its end blocks were read)."""
        for uid in todo:
            last.pop(uid, None)
        opened: dict[str, _Open] = {}
        try:
            with self.server.series_stream([job.uid for job in jobs]) as answer:
                reader = _Reader(answer.iter_bytes(CHUNK))
                return self._read_tar(reader, todo, opened, last, deliver)
        except OSError as exc:
            if exc.errno in _FULL:
                raise DiskFull(
                    f"no space left in {self.staging.parent.parent} ({exc.strerror}); "
                    "free some and run the same command again"
                ) from exc
            raise
        finally:
            for entry in opened.values():  # never completed: nothing of it is kept
                self.on_bytes(-entry.nbytes)
                clear_folder(entry.folder, quiet=True)

    def _read_tar(
        self,
        reader: _Reader,
        todo: dict[str, Job],
        opened: dict[str, _Open],
        last: dict[str, str],
        deliver: Deliver,
    ) -> bool:
        while True:
            if self.stop.is_set():
                raise Stopped
            if reader.at_end():
                raise Corrupt("the stream ended before the end of the archive")
            block = reader.read(BLOCK)
            if block == b"\0" * BLOCK:
                return True
            uid, name, size = _member(block)
            entry = opened.get(uid)
            if entry is None:
                job = todo.get(uid)
                if job is None:
                    raise Corrupt(f"the stream holds a series that was not asked for: {uid[:64]}")
                entry = _Open(job, self.staging / safe_component(uid))
                try:
                    entry.folder.mkdir()
                except FileExistsError:  # left by an earlier attempt
                    clear_folder(entry.folder)
                    entry.folder.mkdir()
                opened[uid] = entry
            if name == INDEX_NAME:
                if size > MAX_INDEX:
                    raise Corrupt(f"the index of series {uid} is too large ({size} bytes)")
                index = reader.read(size)
                reader.read(-size % BLOCK)
                del opened[uid]
                self._settle(entry, index, todo, last, deliver)
            else:
                self._receive(reader, entry, name, size)

    def _receive(self, reader: _Reader, entry: _Open, name: str, size: int) -> None:
        if name in entry.files or name == MD5_LIST:
            raise Corrupt(f"series {entry.job.uid}: {name} arrived twice")
        digest = hashlib.sha256()
        with (entry.folder / (name + ".part")).open("wb") as out:
            for piece in reader.pieces(size):
                digest.update(piece)
                out.write(piece)
                self.on_bytes(len(piece))
        reader.read(-size % BLOCK)
        entry.files[name] = (size, digest.hexdigest())
        entry.nbytes += size

    def _settle(
        self, entry: _Open, index: bytes, todo: dict[str, Job], last: dict[str, str],
        deliver: Deliver,
    ) -> None:  # fmt: skip
        job = entry.job
        try:
            result = self._verify(entry, index)
        except Corrupt as exc:
            LOGGER.info("series %s: %s", job.uid, exc.message)
            last[job.uid] = exc.message
            self.on_bytes(-entry.nbytes)
            clear_folder(entry.folder, quiet=True)
            return
        del todo[job.uid]
        deliver(result)

    def _verify(self, entry: _Open, index: bytes) -> Fetched:
        rows = _index_rows(index)
        job = entry.job
        names = [row[0] for row in rows]
        missing = set(names) - set(entry.files)
        if missing:
            raise Corrupt(f"{len(missing)} listed file(s) missing, e.g. {sorted(missing)[0]}")
        extra = set(entry.files) - set(names)
        if extra:
            raise Corrupt(f"{len(extra)} file(s) not in the index, e.g. {sorted(extra)[0]}")
        series_digest = hashlib.sha256()
        md5_lines = ["Filename,MD5Hash"]
        total = 0
        for name, size, sha256, md5 in rows:
            got_size, got_sha = entry.files[name]
            if got_size != size or got_sha != sha256:
                raise Corrupt(f"{name}: SHA-256 is not the archive's")
            part = entry.folder / (name + ".part")
            final = final_name(self.layout, part, name)
            os.replace(part, entry.folder / final)
            series_digest.update(f"{final} {md5}\n".encode())
            md5_lines.append(f"{final},{md5}")
            total += size
        if job.images is not None and len(rows) != job.images:
            raise Corrupt(f"{len(rows)} files arrived; the server lists {job.images}")
        if job.expected_size is not None and job.expected_size > 0 and total != job.expected_size:
            raise Corrupt(f"{total} bytes arrived; the server lists {job.expected_size}")
        (entry.folder / MD5_LIST).write_text("\n".join(md5_lines) + "\n")
        return Fetched(job.uid, entry.folder, job.folder, len(rows), total,
                       series_digest.hexdigest(), 1)  # fmt: skip


def _member(block: bytes) -> tuple[str, str, int]:
    """(series UID, file name, size) of a tar header; Corrupt for anything unexpected."""
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    except tarfile.TarError as exc:
        raise Corrupt(f"a damaged tar header in the stream ({exc})") from exc
    if not info.isreg():
        raise Corrupt(f"unexpected tar member {info.name[:80]!r} (not a regular file)")
    uid, sep, name = info.name.partition("/")
    if not sep or not uid:
        raise Corrupt(f"unexpected tar member {info.name[:80]!r}")
    return uid, entry_name(name), info.size


def _index_rows(index: bytes) -> list[tuple[str, int, str, str]]:
    """(name, size, sha256, md5) per file of a series index."""
    try:
        reader = csv.DictReader(io.StringIO(index.decode("utf-8")))
        rows = [
            (entry_name(row["name"]), int(row["size"]), row["sha256"].lower(), row["md5"].lower())
            for row in reader
        ]
    except (UnicodeDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise Corrupt(f"the series index cannot be read ({exc})") from exc
    if len({row[0] for row in rows}) != len(rows):
        raise Corrupt("the series index names a file twice")
    return rows


__all__ = ["BulkFetcher", "Deliver"]
