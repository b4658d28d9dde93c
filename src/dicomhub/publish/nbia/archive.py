"""Series ZIPs as NBIA builds them, with a Content-Length and no silent truncation.

``getImage`` gives ``LICENSE`` first, then the images (``1-001.dcm``… with
``NewFileNames=Yes``, ``00000001.dcm``… otherwise) and, with ``IncludeMD5``,
``md5hashes.csv``; ``getImageWithMD5Hash`` gives ``00000001.dcm``… and
``md5hashes.csv`` without a licence.  Entry names never hold a path
separator, since tcia_utils extracts them straight into the series folder.

Unlike NBIA, entries are stored rather than deflated (DICOM barely compresses
and the stream then runs at disk speed), which makes the archive's length
known before the first byte: it is sent as ``Content-Length``.  Every blob is
checked against its recorded size and SHA-256 while it streams; a missing
blob is refused before the response starts, a damaged one aborts the stream,
so a client never receives a complete-looking but short ZIP.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dicomhub.core.store.base import BlobStore, verified_blob
from dicomhub.errors import StorageError
from dicomhub.publish.nbia.instances import InstanceRow
from dicomhub.publish.zipparts import (
    END_RECORD,
    ENTRY_OVERHEAD,
    FLUSH_AT,
    ZIP32_ENTRIES,
    ZIP32_LIMIT,
    Sink,
    stored_entry,
)

LOGGER = logging.getLogger(__name__)


LICENSE_TEMPLATE = (
    "License\n\nThe {collection} collection is distributed under the {name} ({url}). \n"
    "By downloading the data, you agree to abide by terms of this license.\n"
)


@dataclass(frozen=True)
class Member:
    """One ZIP entry: literal bytes, or a blob with its recorded size and SHA-256."""

    name: str
    size: int
    data: bytes | None = None
    blob_key: str | None = None
    sha256: str | None = None


def licence_text(collection: str, name: str, url: str, citation: str = "") -> bytes:
    """The LICENSE entry, in the words of NBIA's licence template (plus the citation)."""
    text = LICENSE_TEMPLATE.format(collection=collection, name=name or "licence", url=url)
    if citation:
        text += f"\nPlease cite:\n{citation}\n"
    return text.encode()


def new_file_names(instances: Sequence[InstanceRow]) -> list[str]:
    """NBIA's ``<acquisition>-<instance>.dcm`` names, in InstanceNumber order.

    The acquisition counter starts at 1 and moves on whenever AcquisitionNumber
    differs from the previous image's; the instance counter restarts there.
    Each part is zero-padded to the width of its largest value.
    """
    groups: list[int] = []
    previous: Any = object()
    for index, instance in enumerate(instances):
        if index == 0 or instance.acquisition != previous:
            groups.append(0)
        groups[-1] += 1
        previous = instance.acquisition
    acq_width = len(str(len(groups)))
    names: list[str] = []
    for acq, count in enumerate(groups, start=1):
        width = len(str(count))
        names.extend(f"{acq:0{acq_width}d}-{n:0{width}d}.dcm" for n in range(1, count + 1))
    return names


def numbered_names(count: int) -> list[str]:
    """``00000001.dcm``, … (NBIA without new file names, and getImageWithMD5Hash)."""
    return [f"{n:08d}.dcm" for n in range(1, count + 1)]


def md5_csv(names: Sequence[str], instances: Sequence[InstanceRow]) -> bytes:
    """``md5hashes.csv``: ``Filename,MD5Hash`` then one row per image, in ZIP order."""
    rows = ["Filename,MD5Hash"]
    rows.extend(f"{name},{instance.md5}" for name, instance in zip(names, instances, strict=True))
    return ("\n".join(rows) + "\n").encode()


def plan(
    instances: Sequence[InstanceRow],
    names: Sequence[str],
    *,
    licence: bytes | None,
    include_md5: bool,
) -> list[Member]:
    """The entries of one series ZIP, in order."""
    members: list[Member] = []
    if licence is not None:
        members.append(Member("LICENSE", len(licence), data=licence))
    for name, instance in zip(names, instances, strict=True):
        members.append(
            Member(name, instance.size, blob_key=instance.blob_key, sha256=instance.sha256)
        )
    if include_md5:
        table = md5_csv(names, instances)
        members.append(Member("md5hashes.csv", len(table), data=table))
    return members


def zip_length(members: Sequence[Member]) -> int | None:
    """The exact length of the stored ZIP :func:`stream` writes, or None if it needs ZIP64."""
    if len(members) >= ZIP32_ENTRIES:
        return None
    total = END_RECORD
    for member in members:
        if member.size * 1.05 > zipfile.ZIP64_LIMIT:
            return None
        total += ENTRY_OVERHEAD + 2 * len(member.name.encode()) + member.size
        if total > ZIP32_LIMIT:
            return None
    return total


def check_blobs(store: BlobStore, members: Sequence[Member]) -> None:
    """Refuse, before any byte is sent, a series whose files are not all in the store."""
    for member in members:
        if member.blob_key is not None and not store.exists(member.blob_key):
            LOGGER.error("blob %s is missing from %s", member.blob_key, store.url)
            raise StorageError("a stored file of this series is missing; nothing was sent")


def stream(store: BlobStore, members: Sequence[Member], when: datetime) -> Iterator[bytes]:
    """Yield the ZIP of ``members``; raise mid-stream if a blob is not what was recorded."""
    sink = Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for member in members:
            with zf.open(stored_entry(member.name, member.size, when), "w") as out:
                if member.data is not None:
                    out.write(member.data)
                else:
                    yield from _copy_blob(store, member, out, sink)
            if sink.pending >= FLUSH_AT:
                yield sink.drain()
    yield sink.drain()


def _copy_blob(store: BlobStore, member: Member, out: Any, sink: Sink) -> Iterator[bytes]:
    assert member.blob_key is not None
    assert member.sha256 is not None
    for chunk in verified_blob(store, member.blob_key, member.size, member.sha256):
        out.write(chunk)
        if sink.pending >= FLUSH_AT:
            yield sink.drain()
