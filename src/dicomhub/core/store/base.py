"""The blob store contract shared by the filesystem and S3 implementations.

Keys are relative, slash-separated paths (``ab/cd/<sha256>.dcm``).  A ``put``
is durable before it returns and never leaves a partial object visible under
its final key, so a database row written after it can trust the bytes exist.
Key parts starting with ``.`` are reserved for the stores' own temporary and
probe files, so those can never be mistaken for (or listed as) blobs.

Ranges follow Python slicing on non-negative bounds: ``open(key, start, end)``
yields ``data[start:end]``; an ``end`` past the blob is clamped, a ``start``
past it gives nothing, and a negative bound or ``end < start`` is a BadRequest.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from dicomhub.errors import BadRequest, StorageError

LOGGER = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

#: What ``put`` accepts: bytes, a binary file object, or an iterable of chunks.
BlobSource = bytes | BinaryIO | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What was stored: the key, its size and its hashes (computed while writing)."""

    key: str
    size: int
    sha256: str
    md5: str


@runtime_checkable
class BlobStore(Protocol):
    """Durable, atomic blob storage with streaming and ranged reads."""

    url: str

    def put(self, key: str, source: BlobSource) -> BlobInfo:
        """Store ``source`` under ``key`` durably and atomically; replaces any old blob."""
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` of the blob in chunks; NotFound if absent."""
        ...

    def get(self, key: str) -> bytes:
        """The whole blob in memory (small blobs only)."""
        ...

    def size(self, key: str) -> int:
        """The blob's size in bytes; NotFound if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        ...

    def adopt(self, files: Sequence[tuple[str, Path]]) -> None:
        """Store each local file's bytes under its key, durably and atomically.

        The files stay where they are (the caller removes them).  The filesystem
        store hard-links a file on its own filesystem instead of copying it, so
        a caller that spooled the bytes there pays for one write, not two.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing key is not an error."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in no particular order."""
        ...

    def check(self) -> None:
        """Verify at start-up that the store is reachable and writable.

        Raises ConfigurationError with one line saying what is wrong.
        """
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store or are not plain relative paths."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(not part or part.startswith(".") for part in parts)
        or len(key) > 512
    ):
        raise BadRequest(f"invalid blob key {key!r}")
    return key


def is_valid_key(key: str) -> bool:
    """Whether ``key`` passes :func:`check_key` (used to skip foreign entries)."""
    try:
        check_key(key)
    except BadRequest:
        return False
    return True


_SHA256 = re.compile(r"[0-9a-f]{64}")


def blob_key_for(sha256: str, suffix: str = ".dcm") -> str:
    """The content-addressed key of a blob: ``ab/cd/<sha256><suffix>``.

    Two levels of two hex digits keep directories (and S3 listings) small.

    Parameters
    ----------
    sha256:
        The blob's SHA-256 as 64 lowercase hex digits.
    suffix:
        Appended to the file name (``".dcm"`` by default).
    """
    if not _SHA256.fullmatch(sha256):
        raise BadRequest(f"not a lowercase hex SHA-256: {sha256!r}")
    return check_key(f"{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}")


def check_range(start: int, end: int | None) -> None:
    """Refuse negative bounds and ``end < start`` (see the module docstring)."""
    if start < 0 or (end is not None and end < start):
        raise BadRequest(f"invalid byte range start={start} end={end}")


def iter_source(source: BlobSource, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The chunks of a ``put`` source: bytes, a binary file (read in chunks) or an iterable."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while chunk := read(chunk_size):
            yield bytes(chunk)
        return
    for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"blob source yielded {type(chunk).__name__}, not bytes")
        if chunk:
            yield bytes(chunk)


class Digests:
    """SHA-256, MD5 and size, updated chunk by chunk while a blob is written."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    def info(self, key: str) -> BlobInfo:
        return BlobInfo(key, self.size, self._sha256.hexdigest(), self._md5.hexdigest())


class ChunkStream(Iterator[bytes]):
    """Yield at most ``remaining`` bytes from ``read`` in ``CHUNK_SIZE`` chunks.

    A class rather than a generator so the underlying file or HTTP body is
    closed even if the caller drops the iterator before the first chunk.
    """

    def __init__(
        self, read: Callable[[int], bytes], close: Callable[[], object], remaining: int | None
    ) -> None:
        self._read = read
        self._close: Callable[[], object] | None = close
        self._remaining = remaining

    def __next__(self) -> bytes:
        if self._close is None:
            raise StopIteration
        want = CHUNK_SIZE if self._remaining is None else min(CHUNK_SIZE, self._remaining)
        chunk = self._read(want) if want else b""
        if not chunk:
            self.close()
            raise StopIteration
        if self._remaining is not None:
            self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        """Release the underlying file or connection (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def __del__(self) -> None:
        self.close()


def verified_blob(store: BlobStore, key: str, size: int, sha256: str) -> Iterator[bytes]:
    """One blob's bytes, checked against its record.

    The last chunk is held back until the digest is checked, so a damaged blob
    never reaches the client whole: the response ends short and the client
    sees a broken transfer.
    """
    digest = hashlib.sha256()
    written = 0
    held: bytes | None = None
    for chunk in store.open(key):
        digest.update(chunk)
        written += len(chunk)
        if written > size:
            break
        if held is not None:
            yield held
        held = chunk
    if written != size or digest.hexdigest() != sha256:
        LOGGER.error("blob %s does not match its record", key)
        raise StorageError("the stored file is damaged; download stopped")
    if held is not None:
        yield held
