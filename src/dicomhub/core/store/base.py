"""The blob store contract shared by the filesystem and S3 implementations.

Keys are relative, slash-separated paths (``ab/cd/<sha256>.dcm``).  A ``put``
is durable before it returns and never leaves a partial object visible under
its final key, so a database row written after it can trust the bytes exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from dicomhub.errors import BadRequest

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

    def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing key is not an error."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, in no particular order."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape the store or are not plain relative paths."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in parts)
        or len(key) > 512
    ):
        raise BadRequest(f"invalid blob key {key!r}")
    return key
