"""Spool files: where arriving bytes land first, hashed as they are written.

The spool folder sits inside the blob store's root when the store is a local
filesystem, so an accepted instance is *moved* into place (one write, one
hash) rather than copied.  Spool files are written without fsync; the store
makes them durable, in parallel for a batch, when it adopts them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dicomhub.core.store.base import CHUNK_SIZE, BlobStore, iter_source
from dicomhub.core.store.filesystem import FilesystemStore

#: Spool files older than this are leftovers of a killed process (a live one is seconds old).
STALE_SPOOL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Spooled:
    """Bytes written to a spool file, with their SHA-256 and size."""

    path: Path
    sha256: str
    size: int


class Hasher:
    """SHA-256 and the size, fed chunk by chunk as the bytes are spooled."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self.size += len(chunk)

    def spooled(self, path: Path) -> Spooled:
        return Spooled(path, self._sha256.hexdigest(), self.size)


class Spool:
    """One spool folder, shared by every process of an intake (names never collide)."""

    def __init__(self, store: BlobStore, fallback: Path) -> None:
        if isinstance(store, FilesystemStore):
            # Hidden (dot) folders are never listed as blobs, and a rename within one
            # filesystem is atomic and free.
            self.folder = store.root / ".incoming"
        else:
            self.folder = fallback
        self.folder.mkdir(parents=True, exist_ok=True)

    def sweep(self) -> None:
        """Remove spool files a killed process left; other live processes share the folder."""
        cutoff = time.time() - STALE_SPOOL_SECONDS
        for path in self.folder.glob("in-*.part"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def new_file(self) -> tuple[BinaryIO, Path]:
        """An open, empty spool file and its path."""
        fd, name = tempfile.mkstemp(dir=self.folder, prefix="in-", suffix=".part")
        return os.fdopen(fd, "w+b"), Path(name)

    def write(self, source: bytes | BinaryIO | Iterable[bytes]) -> Spooled:
        """Write ``source`` to a new spool file, hashing as it goes."""
        handle, path = self.new_file()
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
