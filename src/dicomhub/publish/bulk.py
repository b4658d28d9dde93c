"""dicomhub's own bulk download API: many series per request, sha256 per file.

NBIA's ``getImageWithMD5Hash`` answers one series per request, zipped, so a
10,000-series basket costs 10,000 round trips and as many ZIP builds; on a
basket of small series the server's per-request work is the limit.  These
routes let a downloader ask for up to :data:`MAX_SERIES` series at once:

* ``GET /api/download``: what this server offers (the downloader's probe);
* ``POST /api/download/files``: every file of the named series, with its
  SOP instance UID, size, SHA-256, MD5 and the name it has in a download;
* ``GET /api/download/file/{sop_instance_uid}``: one instance's bytes;
* ``POST /api/download/stream``: one uncompressed tar of all the named
  series: per series its files (``<series uid>/00000001.dcm``…) then a
  trailing ``<series uid>/index.csv`` (name, SOP instance UID, size,
  SHA-256, MD5), so a client can verify and keep each series as soon as its
  index arrives, even if the stream breaks later.

Visibility is the one rule of :mod:`dicomhub.publish.access`, applied through
:func:`dicomhub.publish.query.series_scope`: a series of a collection the
caller may not see is treated as absent (left out of listings and streams, 404
for a file), so no answer reveals its UIDs.  Every blob is checked against its
recorded size and SHA-256 while it streams; a damaged one aborts the response
before that series' index is sent, so a client never takes it as complete.
"""

from __future__ import annotations

import csv
import io
import logging
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import Instance, Series
from dicomhub.core.store.base import BlobStore, verified_blob
from dicomhub.errors import NotFound
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import SeriesFilter, check_uid
from dicomhub.publish.http import ContextDep, DbDep, VisibilityDep
from dicomhub.publish.query import series_scope

LOGGER = logging.getLogger(__name__)

PROTOCOL = "dicomhub-bulk/1"
MAX_SERIES = 1000
INDEX_NAME = "index.csv"
INDEX_COLUMNS = ("name", "sop_instance_uid", "size", "sha256", "md5")
TAR_MEDIA_TYPE = "application/x-tar"
#: Bytes gathered before a chunk leaves: small files are many per chunk, so the
#: thread hop of a synchronous stream is paid per chunk, not per file.
_FLUSH_AT = 512 * 1024
#: Series whose instances are read in one query while streaming.
_QUERY_BATCH = 100
_BLOCK = tarfile.BLOCKSIZE

router = APIRouter(prefix="/api/download", tags=["download"])


class SeriesList(BaseModel):
    """The series a bulk request is about."""

    series: list[str] = Field(min_length=1, max_length=MAX_SERIES)


@dataclass(frozen=True)
class FileRow:
    """One file of a download: its series, identity, name and checksums."""

    series_id: int
    series_uid: str
    sop_instance_uid: str
    name: str
    size: int
    sha256: str
    md5: str
    blob_key: str

    def to_json(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
        }


def file_name(number: int) -> str:
    """The n-th file's name in a series: ``00000001.dcm``, as getImageWithMD5Hash names it."""
    return f"{number:08d}.dcm"


def visible_series(
    session: Session, seen: Visibility, uids: Sequence[str]
) -> list[tuple[int, str]]:
    """(id, UID) of the requested series the caller may see, in request order, once each."""
    wanted = tuple(dict.fromkeys(check_uid(uid, "SeriesInstanceUID") for uid in uids))
    scope = series_scope(session, seen, SeriesFilter(series_uids=wanted))
    columns: tuple[Any, ...] = (Series.series_instance_uid, Series.id)
    query = select(*columns)
    found: dict[str, int] = {
        str(uid): int(ident) for uid, ident in session.execute(scope.apply(query))
    }
    return [(found[uid], uid) for uid in wanted if uid in found]


def series_files(
    session: Session, series: Sequence[tuple[int, str]]
) -> Iterator[tuple[str, list[FileRow]]]:
    """(UID, files) of every series (already visibility-checked), in request order."""
    for start in range(0, len(series), _QUERY_BATCH):
        batch = series[start : start + _QUERY_BATCH]
        uid_of = dict(batch)
        query = (
            select(
                Instance.series_id, Instance.sop_instance_uid, Instance.size, Instance.sha256,
                Instance.md5, Instance.blob_key,
            )
            .where(Instance.series_id.in_(list(uid_of)))
            .order_by(Instance.series_id, Instance.instance_number.asc().nulls_last(), Instance.id)
        )  # fmt: skip
        rows: dict[int, list[FileRow]] = {ident: [] for ident in uid_of}
        for series_id, sop, size, sha256, md5, key in session.execute(query):
            files = rows[series_id]
            files.append(
                FileRow(series_id, uid_of[series_id], sop, file_name(len(files) + 1), size,
                        sha256, md5, key)
            )  # fmt: skip
        for ident, uid in batch:  # keep the request's order
            yield uid, rows[ident]


def file_rows(session: Session, series: Sequence[tuple[int, str]]) -> Iterator[FileRow]:
    """Every file of ``series`` (already visibility-checked), series by series, named in order."""
    for _uid, files in series_files(session, series):
        yield from files


def index_csv(files: Sequence[FileRow]) -> bytes:
    """A series' trailing index: one row per file, in stream order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    for row in files:
        writer.writerow((row.name, row.sop_instance_uid, row.size, row.sha256, row.md5))
    return out.getvalue().encode()


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """A ustar header for a regular file (names here are short: a UID and a file name)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def tar_stream(
    sessions: sessionmaker[Session], store: BlobStore, series: Sequence[tuple[int, str]]
) -> Iterator[bytes]:
    """The tar of ``series``: each series' files, then its index; verified while it streams.

    Every series gets an index, an empty one included, so a client can tell
    "no files" from "left out".  The database is read 100 series at a time in
    short sessions, never held while bytes wait for the client.
    """
    mtime = int(time.time())
    pending: list[bytes] = []
    size = 0
    for start in range(0, len(series), _QUERY_BATCH):
        # A short session per batch: a slow client must not hold a pooled connection.
        with sessions() as session:
            listed = list(series_files(session, series[start : start + _QUERY_BATCH]))
        for uid, files in listed:
            for row in files:
                head = tar_header(f"{uid}/{row.name}", row.size, mtime)
                pending.append(head)
                size += len(head)
                for chunk in verified_blob(store, row.blob_key, row.size, row.sha256):
                    pending.append(chunk)
                    size += len(chunk)
                    if size >= _FLUSH_AT:
                        yield b"".join(pending)
                        pending, size = [], 0
                pad = _padding(row.size)
                pending.append(pad)
                size += len(pad)
            index = index_csv(files)
            part = tar_header(f"{uid}/{INDEX_NAME}", len(index), mtime) + index
            part += _padding(len(index))
            pending.append(part)
            size += len(part)
            if size >= _FLUSH_AT:
                yield b"".join(pending)
                pending, size = [], 0
    pending.append(b"\0" * (2 * _BLOCK))
    yield b"".join(pending)


@router.get("")
def capabilities() -> dict[str, Any]:
    """What this server's bulk download offers (a downloader probes it before choosing)."""
    return {
        "protocol": PROTOCOL,
        "max_series": MAX_SERIES,
        "files": "/api/download/files",
        "file": "/api/download/file/{sop_instance_uid}",
        "stream": "/api/download/stream",
        "checksum": "sha256",
    }


@router.post("/files")
def list_files(body: SeriesList, db: DbDep, seen: VisibilityDep) -> dict[str, Any]:
    """Every file of the named series the caller may see (absent ones are left out)."""
    series = visible_series(db, seen, body.series)
    files = [row.to_json() for row in file_rows(db, series)]
    return {"series": len(series), "files": files}


@router.get("/file/{sop_instance_uid}")
def get_file(sop_instance_uid: str, context: ContextDep, seen: VisibilityDep) -> StreamingResponse:
    """One instance's bytes, with its SHA-256 and MD5 in headers; 404 if not visible."""
    uid = check_uid(sop_instance_uid, "SOPInstanceUID")
    with context.db.sessions() as db:  # released before the bytes stream
        row = db.execute(
            select(Instance.size, Instance.sha256, Instance.md5, Instance.blob_key)
            .join(Series, Series.id == Instance.series_id)
            .where(
                Instance.sop_instance_uid == uid,
                Series.collection_id.in_(seen.collection_ids()),
            )
        ).first()
    if row is None:
        raise NotFound("no such instance")
    size, sha256, md5, key = row
    if not context.store.exists(key):
        raise NotFound("no such instance")
    return StreamingResponse(
        verified_blob(context.store, key, size, sha256),
        media_type="application/dicom",
        headers={"Content-Length": str(size), "X-Checksum-SHA256": sha256, "X-Checksum-MD5": md5},
    )


@router.post("/stream")
def stream(body: SeriesList, context: ContextDep, seen: VisibilityDep) -> StreamingResponse:
    """One tar of every named series the caller may see (absent ones are left out)."""
    with (
        context.db.sessions() as session
    ):  # not the request's: that one lives as long as the stream
        series = visible_series(session, seen, body.series)
    return StreamingResponse(
        tar_stream(context.db.sessions, context.store, series),
        media_type=TAR_MEDIA_TYPE,
        headers={"X-Series-Count": str(len(series))},
    )


__all__ = [
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "MAX_SERIES",
    "PROTOCOL",
    "FileRow",
    "SeriesList",
    "file_name",
    "file_rows",
    "index_csv",
    "router",
    "series_files",
    "tar_stream",
    "visible_series",
]
