"""Single byte ranges (RFC 9110 §14) on one stored file, still checked against its record.

A browser or download manager resuming ``getSingleImage`` sends ``Range:
bytes=<from>-``; NBIA ignored it and sent the whole file again.  Here one
range is honoured with a 206; several ranges, another unit, a malformed value
or a stale ``If-Range`` get the whole file (which RFC 9110 allows), and a
range past the end gets a 416 with the file's length.

The range is cut from the blob while the whole blob streams through its
SHA-256 check, and the last piece is held back until the check passes, so a
damaged file never completes a range either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from dicomhub.core.store.base import BlobStore, verified_blob

_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range inside a file of ``size`` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


class Unsatisfiable(ValueError):
    """The range starts past the end of the file (answered with 416)."""


def etag(sha256: str) -> str:
    """A strong validator for a stored file: its recorded SHA-256."""
    return f'"{sha256}"'


def requested(header: str | None, size: int, if_range: str | None, tag: str) -> ByteRange | None:
    """The one range to serve, or None to serve the whole file.

    Raises
    ------
    Unsatisfiable
        A well-formed single range that lies wholly past the end.
    """
    if header is None or (if_range is not None and if_range.strip() != tag):
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # a suffix: the last N bytes
        count = int(match[2])
        if count == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - count), size - 1, size)
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    if last < first:
        return None
    if first >= size:
        raise Unsatisfiable(header)
    if not match[2]:
        last = size - 1
    return ByteRange(first, min(last, size - 1), size)


def sliced_blob(
    store: BlobStore, key: str, size: int, sha256: str, wanted: ByteRange
) -> Iterator[bytes]:
    """The bytes of ``wanted`` from a blob checked whole against its size and SHA-256."""
    offset = 0
    held: bytes | None = None
    for chunk in verified_blob(store, key, size, sha256):
        start, end = offset, offset + len(chunk)
        offset = end
        if end <= wanted.first or start > wanted.last:
            continue
        piece = chunk[max(0, wanted.first - start) : wanted.last + 1 - start]
        if held is not None:
            yield held
        held = piece
    if held is not None:
        yield held
