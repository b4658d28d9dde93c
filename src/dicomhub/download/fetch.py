"""Fetch one series: stream its zip, unpack into staging, check every file, or try again.

The answer of ``getImageWithMD5Hash`` is streamed into a spooled temporary
file (memory up to :data:`SPOOL_BYTES`, then an unnamed file in the staging
folder), so a worker holds at most one chunk and one small spool whatever the
series' size.  Each entry is written under ``<name>.part`` while its MD5 (and
SHA-256) is computed, compared with ``md5hashes.csv`` and only then renamed;
the series folder itself reaches its final place later, by one rename, after
the state file says it was verified.  A partial file never has a final name.

Retried, with backoff and jitter: timeouts, dropped connections, 5xx and 429,
a zip cut short or damaged, a checksum mismatch, fewer files than the server
lists.  Not retried: the server saying no (4xx), and a full disk, which stops
the whole run instead (:class:`~dicomhub.download.state.DiskFull`).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import logging
import os
import shutil
import struct
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import httpx

from dicomhub.download.client import RetryPolicy, Server, ServerError, Transient, describe
from dicomhub.download.layout import Layout, safe_component
from dicomhub.download.state import DENIED, FAILED, UNKNOWN, DiskFull
from dicomhub.errors import Forbidden, NotFound

LOGGER = logging.getLogger(__name__)

SPOOL_BYTES = 4 * 1024 * 1024
CHUNK = 256 * 1024
MD5_LIST = "md5hashes.csv"
SHA256_LIST = "sha256hashes.csv"
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Corrupt(Transient):
    """What arrived is not what the server promised (bad zip, checksum, count or size)."""

    code = "corrupt"


class Stopped(Exception):
    """The run is stopping (another worker hit a fatal error); this series stays pending."""


@dataclass(frozen=True)
class Job:
    """One series to fetch and what the server said about it."""

    uid: str
    folder: PurePosixPath
    images: int | None
    expected_size: int | None


@dataclass(frozen=True)
class Fetched:
    """A series verified in staging, ready to be moved to ``folder``."""

    uid: str
    staged: Path
    folder: PurePosixPath
    files: int
    nbytes: int
    sha256: str
    attempts: int


@dataclass(frozen=True)
class Failed:
    """A series given up on for this run, and why."""

    uid: str
    status: str
    message: str
    attempts: int


@dataclass
class Fetcher:
    """Shared by every worker thread of one run."""

    server: Server
    staging: Path
    layout: Layout
    policy: RetryPolicy
    stop: threading.Event
    on_bytes: Callable[[int], None] = lambda n: None

    def fetch(self, job: Job) -> Fetched | Failed:
        """Fetch and verify ``job``, retrying what is worth retrying."""
        last = ""
        for attempt in range(self.policy.retries + 1):
            if self.stop.is_set():
                raise Stopped
            try:
                return self._attempt(job, attempt + 1)
            except (Transient, httpx.TransportError, zipfile.BadZipFile) as exc:
                last = describe(exc)
                LOGGER.info("series %s, attempt %d: %s", job.uid, attempt + 1, last)
            except (NotFound, Forbidden, ServerError) as exc:
                status = DENIED if isinstance(exc, Forbidden) else FAILED
                if isinstance(exc, NotFound):
                    status = UNKNOWN
                return Failed(job.uid, status, exc.message, attempt + 1)
            if attempt < self.policy.retries:
                self._sleep(self.policy.delay(attempt))
        return Failed(job.uid, FAILED, f"{last} (after {self.policy.retries + 1} attempts)",
                      self.policy.retries + 1)  # fmt: skip

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped

    def _attempt(self, job: Job, attempt: int) -> Fetched:
        folder = self.staging / safe_component(job.uid)
        received = 0
        try:
            clear_folder(folder)
            folder.mkdir(parents=True)
            with tempfile.SpooledTemporaryFile(
                SPOOL_BYTES, mode="w+b", dir=str(self.staging)
            ) as spool:
                received = self._receive(job, spool)
                files, nbytes, digest = self._unpack(job, spool, folder)
            self.on_bytes(nbytes - received)  # the bar counts file bytes, not zip overhead
            return Fetched(job.uid, folder, job.folder, files, nbytes, digest, attempt)
        except OSError as exc:
            clear_folder(folder, quiet=True)
            if exc.errno in _FULL:
                raise DiskFull(
                    f"no space left in {self.staging.parent.parent} ({exc.strerror}); "
                    "free some and run the same command again"
                ) from exc
            raise
        except BaseException:
            self.on_bytes(-received)
            clear_folder(folder, quiet=True)
            raise

    def _receive(self, job: Job, spool: IO[bytes]) -> int:
        received = 0
        with self.server.series_zip(job.uid) as answer:
            promised = answer.headers.get("content-length")
            for chunk in answer.iter_bytes(CHUNK):
                if self.stop.is_set():
                    raise Stopped
                spool.write(chunk)
                received += len(chunk)
                self.on_bytes(len(chunk))
        if promised is not None and promised.isdigit() and int(promised) != received:
            raise Corrupt(f"the answer was cut short ({received} of {promised} bytes)")
        spool.seek(0)
        return received

    def _unpack(self, job: Job, spool: IO[bytes], folder: Path) -> tuple[int, int, str]:
        try:
            return self._unzip(job, spool, folder)
        except zipfile.BadZipFile as exc:
            raise Corrupt(f"the zip is damaged ({exc})") from exc

    def _unzip(self, job: Job, spool: IO[bytes], folder: Path) -> tuple[int, int, str]:
        with zipfile.ZipFile(spool) as archive:
            names = [i for i in archive.infolist() if not i.is_dir()]
            md5s = _hash_list(archive, MD5_LIST)
            if md5s is None:
                raise Corrupt("the zip has no md5hashes.csv, so nothing can be verified")
            sha256s = _hash_list(archive, SHA256_LIST, column="sha256") or {}
            series_digest = hashlib.sha256()
            count = total = 0
            for info in sorted(names, key=lambda i: i.filename):
                if info.filename in (MD5_LIST, SHA256_LIST):
                    continue
                name = entry_name(info.filename)
                part = folder / (name + ".part")
                want_sha = info.filename in sha256s
                size, md5, sha256 = _extract(archive, spool, info, part, want_sha)
                if md5s.get(info.filename, "").lower() != md5:
                    raise Corrupt(f"{info.filename}: MD5 {md5} is not the published one")
                if want_sha and sha256s[info.filename].lower() != sha256:
                    raise Corrupt(f"{info.filename}: SHA-256 is not the archive's")
                final = final_name(self.layout, part, name)
                os.replace(part, folder / final)
                series_digest.update(f"{final} {md5}\n".encode())
                count += 1
                total += size
            missing = set(md5s) - {i.filename for i in names}
            if missing:
                raise Corrupt(f"{len(missing)} listed file(s) missing, e.g. {sorted(missing)[0]}")
            (folder / MD5_LIST).write_bytes(archive.read(MD5_LIST))
        if job.images is not None and count != job.images:
            raise Corrupt(f"{count} files arrived; the server lists {job.images}")
        if job.expected_size is not None and job.expected_size > 0 and total != job.expected_size:
            raise Corrupt(f"{total} bytes arrived; the server lists {job.expected_size}")
        return count, total, series_digest.hexdigest()


def final_name(layout: Layout, part: Path, name: str) -> str:
    """The name a verified file takes: the server's, or its SOP Instance UID (``uid`` layout)."""
    if layout is not Layout.UID:
        return name
    from pydicom import dcmread  # only this layout needs it; keeps start-up quick
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(part, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return safe_component(str(ds.SOPInstanceUID), name[:-4] or "instance") + ".dcm"
    except (InvalidDicomError, AttributeError, ValueError):
        return name


def _hash_list(archive: zipfile.ZipFile, member: str, column: str = "md5") -> dict[str, str] | None:
    """``{file name: hex digest}`` from a ``Filename,<Hash>`` list, None if absent."""
    try:
        text = archive.read(member).decode("utf-8", errors="replace")
    except KeyError:
        return None
    out: dict[str, str] = {}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    index = next((n for n, h in enumerate(header) if column in h.lower()), 1)
    for row in reader:
        if len(row) > index and row[0].strip():
            out[row[0].strip()] = row[index].strip()
    return out


def entry_name(name: str) -> str:
    """The file name of a zip entry; refuse one that would leave the series folder."""
    if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
        raise Corrupt(f"unsafe entry name in the zip: {name[:80]!r}")
    return name


def _extract(
    archive: zipfile.ZipFile, spool: IO[bytes], info: zipfile.ZipInfo, target: Path, sha: bool
) -> tuple[int, str, str]:
    """Write one entry to ``target``; (size, MD5, SHA-256 or "" when not asked for).

    A stored entry (what dicomhub sends) is copied straight from the spool: its
    MD5 is checked anyway, so zipfile's CRC pass would only cost time.  Deflated
    entries (NBIA's) go through zipfile.
    """
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256() if sha else None
    size = 0
    with target.open("wb") as out:
        for chunk in _entry_chunks(archive, spool, info):
            md5.update(chunk)
            if sha256 is not None:
                sha256.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, md5.hexdigest(), "" if sha256 is None else sha256.hexdigest()


def _entry_chunks(
    archive: zipfile.ZipFile, spool: IO[bytes], info: zipfile.ZipInfo
) -> Iterator[bytes]:
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        with archive.open(info) as source:
            while chunk := source.read(CHUNK):
                yield chunk
        return
    spool.seek(info.header_offset)
    local = spool.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise Corrupt(f"{info.filename}: bad local header in the zip")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    spool.seek(info.header_offset + 30 + name_len + extra_len)
    left = info.compress_size
    while left > 0:
        chunk = spool.read(min(CHUNK, left))
        if not chunk:
            raise Corrupt(f"{info.filename}: the zip ends inside this entry")
        left -= len(chunk)
        yield chunk


def clear_folder(folder: Path, *, quiet: bool = False) -> None:
    """Remove a staging folder and what is in it (``quiet``: ignore errors)."""
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=quiet)


def move_into_place(staged: Path, final: Path) -> None:
    """Rename a verified staging folder to its final place (replacing a stale copy)."""
    try:
        os.rename(staged, final)  # the common case: one system call
        return
    except FileNotFoundError:
        if not staged.exists():
            raise
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
    if final.exists():
        old = final.with_name(final.name + f".old-{time.time_ns()}")
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)


__all__ = [
    "Corrupt",
    "Failed",
    "Fetched",
    "Fetcher",
    "Job",
    "Stopped",
    "clear_folder",
    "entry_name",
    "final_name",
    "move_into_place",
]
