"""Series TARs for the NBIA Data Retriever's ``DownloadServletV4``, with a known length.

NBIA writes the TAR with commons-compress as it reads each file, swallows a
missing file and ends with a short but valid archive.  Here every entry's size
is the one recorded at publication, so the whole TAR's length is known (sent
as ``Content-Length``), a missing blob is refused before the first byte
(:func:`dicomhub.publish.nbia.archive.check_blobs`) and a damaged one aborts
the stream (:func:`dicomhub.publish.nbia.archive.verified_blob`): the client's
own size checks then see a broken transfer, never a complete-looking one.

Headers are GNU tar (what commons-compress reads, long names included).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from datetime import datetime

from dicomhub.core.store.base import BlobStore, verified_blob
from dicomhub.publish.nbia.archive import Member

BLOCK = tarfile.BLOCKSIZE
_END = b"\0" * (2 * BLOCK)


def header(name: str, size: int, when: datetime) -> bytes:
    """The header block(s) of one regular file entry."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = int(when.timestamp())
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def tar_length(members: Sequence[Member], when: datetime) -> int:
    """The exact length of the TAR :func:`stream` writes."""
    total = len(_END)
    for member in members:
        total += len(header(member.name, member.size, when)) + member.size
        total += len(_padding(member.size))
    return total


def stream(store: BlobStore, members: Sequence[Member], when: datetime) -> Iterator[bytes]:
    """Yield the TAR of ``members``; raise mid-stream if a blob is not what was recorded."""
    for member in members:
        yield header(member.name, member.size, when)
        if member.data is not None:
            yield member.data
        else:
            assert member.blob_key is not None
            assert member.sha256 is not None
            yield from verified_blob(store, member.blob_key, member.size, member.sha256)
        yield _padding(member.size)
    yield _END
