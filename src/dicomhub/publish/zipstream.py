"""A streamed zip of series, in constant memory, that fails loudly rather than short.

The zip is written with :mod:`zipfile` into a sink that is drained after every
chunk, so memory holds one blob chunk plus the list of series (never a whole
file or the whole archive).  Entries are stored, not deflated: DICOM pixel data
rarely compresses and the download should run at disk speed.

Each blob is checked against the size and SHA-256 recorded when it was
published; a missing or altered blob raises in the middle of the stream, which
aborts the HTTP response, so a client sees a broken transfer and never a
complete-looking but short archive.

The archive's length is known before the first byte whenever it needs no
ZIP64 records (under 4 GB, under 65,535 entries): stored entries of known
sizes and names make every header's size fixed, so the response can carry a
``Content-Length`` and a client can show progress and detect a short copy.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import Collection, Instance, Patient, Series, Study
from dicomhub.core.store.base import BlobStore
from dicomhub.errors import StorageError
from dicomhub.publish.query import ordered
from dicomhub.publish.zipparts import END_RECORD, ENTRY_OVERHEAD, FLUSH_AT, Sink, stored_entry

LOGGER = logging.getLogger(__name__)

_SERIES_BATCH = 200
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(value: str, fallback: str = "unknown") -> str:
    """A path component that cannot climb out of its folder or hide (``..``, ``/``, ``.x``)."""
    cleaned = _SAFE.sub("_", value).strip("._") or fallback
    return cleaned[:64]


@dataclass(frozen=True)
class _SeriesRow:
    id: int
    uid: str
    study_uid: str
    patient_id: str
    collection: str
    license_name: str
    license_url: str
    citation: str


def _series_rows(session: Session, conditions: Sequence[ColumnElement[bool]]) -> list[_SeriesRow]:
    columns: tuple[Any, ...] = (
        Series.id,
        Series.series_instance_uid,
        Study.study_instance_uid,
        Patient.patient_id,
        Collection.name,
        Collection.license_name,
        Collection.license_url,
        Collection.citation,
    )
    query = (
        select(*columns)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Collection, Collection.id == Series.collection_id)
        .where(*conditions)
    )
    return [_SeriesRow(*tuple(row)) for row in session.execute(ordered(session, query))]


def _licence_text(row: _SeriesRow) -> bytes:
    lines = [f"Collection: {row.collection}", f"Licence: {row.license_name}"]
    if row.license_url:
        lines.append(f"Licence URL: {row.license_url}")
    if row.citation:
        lines += ["", "Please cite:", row.citation]
    return ("\n".join(lines) + "\n").encode()


#: Lengths are given only well below where zipfile would switch to ZIP64 records.
_LENGTH_LIMIT = int(zipfile.ZIP64_LIMIT * 0.9)
_MAX_ENTRIES = zipfile.ZIP_FILECOUNT_LIMIT - 1


def zip_length(
    sessions: sessionmaker[Session], conditions: Sequence[ColumnElement[bool]]
) -> int | None:
    """The exact size of :func:`zip_series` for ``conditions``, or None if it needs ZIP64."""
    with sessions() as session:
        series = _series_rows(session, conditions)
        stats: dict[int, tuple[int, int]] = {}
        ids = [row.id for row in series]
        for start in range(0, len(ids), _SERIES_BATCH * 5):
            chunk = ids[start : start + _SERIES_BATCH * 5]
            query = (
                select(Instance.series_id, func.count(), func.coalesce(func.sum(Instance.size), 0))
                .where(Instance.series_id.in_(chunk))
                .group_by(Instance.series_id)
            )
            stats.update({sid: (int(n), int(size)) for sid, n, size in session.execute(query)})
    total, entries = END_RECORD, 0
    licences: dict[str, _SeriesRow] = {}
    for row in series:
        folder = safe_component(row.collection)
        licences.setdefault(folder, row)
        count, size = stats.get(row.id, (0, 0))
        if count > 999_999:
            return None
        name = len(_instance_name(row, 1))
        total += count * (2 * name + ENTRY_OVERHEAD) + size
        entries += count
    for folder, row in licences.items():
        total += 2 * len(f"{folder}/LICENSE.txt") + ENTRY_OVERHEAD + len(_licence_text(row))
        entries += 1
    if entries > _MAX_ENTRIES or total > _LENGTH_LIMIT:
        return None
    return total


def _instance_name(row: _SeriesRow, number: int) -> str:
    """The entry name of the ``number``-th instance of a series (ASCII: safe parts, UIDs)."""
    return "/".join(
        (
            safe_component(row.collection),
            safe_component(row.patient_id),
            row.study_uid,
            row.uid,
            f"{number:06d}.dcm",
        )
    )


def zip_series(
    sessions: sessionmaker[Session],
    store: BlobStore,
    conditions: Sequence[ColumnElement[bool]],
    *,
    expected_series: int,
    now: datetime,
) -> Iterator[bytes]:
    """Yield a zip of every instance of the series matching ``conditions``.

    Layout: ``<collection>/LICENSE.txt`` once per collection, and
    ``<collection>/<patient>/<study uid>/<series uid>/<nnnnnn>.dcm``.

    Parameters
    ----------
    sessions:
        Opens the stream's own session (the request's is closed by then).
    conditions:
        Series conditions that already include the caller's visibility.
    expected_series:
        How many series the caller was promised; a different count (access
        changed in between) stops the stream before its first byte.
    """
    sink = Sink()
    with sessions() as session:
        series = _series_rows(session, conditions)
        if len(series) != expected_series:
            raise StorageError("the basket changed while the download started; try again")
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            seen: set[str] = set()
            for start in range(0, len(series), _SERIES_BATCH):
                batch = series[start : start + _SERIES_BATCH]
                for row in batch:
                    folder = safe_component(row.collection)
                    if folder not in seen:
                        seen.add(folder)
                        licence = stored_entry(f"{folder}/LICENSE.txt", 0, now)
                        zf.writestr(licence, _licence_text(row))
                yield from _write_batch(session, store, zf, sink, batch, now)
        yield sink.drain()


def _write_batch(
    session: Session,
    store: BlobStore,
    zf: zipfile.ZipFile,
    sink: Sink,
    batch: list[_SeriesRow],
    now: datetime,
) -> Iterator[bytes]:
    by_id = {row.id: row for row in batch}
    query = (
        select(Instance.series_id, Instance.blob_key, Instance.size, Instance.sha256)
        .where(Instance.series_id.in_(list(by_id)))
        .order_by(Instance.series_id, Instance.instance_number.asc().nulls_last(), Instance.id)
    )
    numbers: dict[int, int] = {}
    for series_id, key, size, sha256 in session.execute(query).all():
        row = by_id[series_id]
        numbers[series_id] = numbers.get(series_id, 0) + 1
        name = _instance_name(row, numbers[series_id])
        digest = hashlib.sha256()
        written = 0
        with zf.open(stored_entry(name, size, now), "w") as out:
            for chunk in store.open(key):
                digest.update(chunk)
                written += len(chunk)
                out.write(chunk)
                if sink.pending >= FLUSH_AT:
                    yield sink.drain()
        if written != size or digest.hexdigest() != sha256:
            LOGGER.error("blob %s of series %s does not match its record", key, row.uid)
            raise StorageError(f"a stored file of series {row.uid} is damaged; download stopped")
        if sink.pending >= FLUSH_AT:
            yield sink.drain()
