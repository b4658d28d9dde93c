"""Exports of a set of series: the NBIA ``.tcia`` manifest and a CSV of series metadata.

The ``.tcia`` text is exactly what NBIA's ``ManifestMaker`` writes: six header
lines in a fixed order (``noOfrRetry`` spelled as NBIA spells it), then one
SeriesInstanceUID per line, every line ending in ``\\n`` and no blank line.
NBIA Data Retriever, the Go retriever and tcia_utils' ``manifestToList`` all
read it back (tcia_utils drops the first six lines blindly, so no ``dataType``
key is ever written).

The caller passes conditions that already carry the visibility check (a
basket's, or a search scope's); rows are fetched in stable order and in
batches, so a 100,000-series export never holds its rows twice.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Series
from dicomhub.publish.query import joined_series, ordered, series_row

MANIFEST_MEDIA_TYPE = "application/x-nbia-manifest-file"
MANIFEST_VERSION = "3.0"
RETRIES = 4
_BATCH = 2000


def download_server_url(base_url: str) -> str:
    """The ``downloadServerUrl`` NBIA writes for a host (its download servlet's URL)."""
    return f"{base_url.rstrip('/')}/nbia-download/servlet/DownloadServlet"


def basket_id(now_ms: int | None = None) -> str:
    """The ``databasketId`` NBIA writes: ``manifest-<epoch millis>.tcia``."""
    return f"manifest-{now_ms if now_ms is not None else int(time.time() * 1000)}.tcia"


def tcia_header(base_url: str, databasket_id: str, *, include_annotation: bool = False) -> str:
    """The six header lines of a ``.tcia`` manifest, each ending in a newline."""
    return (
        f"downloadServerUrl={download_server_url(base_url)}\n"
        f"includeAnnotation={'true' if include_annotation else 'false'}\n"
        f"noOfrRetry={RETRIES}\n"
        f"databasketId={databasket_id}\n"
        f"manifestVersion={MANIFEST_VERSION}\n"
        "ListOfSeriesToDownload=\n"
    )


def tcia_manifest(
    series_uids: Iterable[str], base_url: str, databasket_id: str | None = None
) -> Iterator[str]:
    """The manifest as text chunks: the header, then one UID per line."""
    yield tcia_header(base_url, databasket_id or basket_id())
    batch: list[str] = []
    for uid in series_uids:
        batch.append(uid)
        if len(batch) >= _BATCH:
            yield "\n".join(batch) + "\n"
            batch.clear()
    if batch:
        yield "\n".join(batch) + "\n"


def ordered_uids(session: Session, *conditions: ColumnElement[bool]) -> Iterator[str]:
    """SeriesInstanceUIDs of the series matching ``conditions``, in stable order, batched."""
    query = ordered(session, joined_series().where(*conditions))
    uids = query.with_only_columns(Series.series_instance_uid)
    for row in session.execute(uids.execution_options(yield_per=_BATCH)):
        yield row[0]


#: CSV columns: NBIA's getSeries names where one exists, so reports built for
#: NBIA (tcia_utils' makeSeriesReport) find the fields they group by.
CSV_COLUMNS: Sequence[tuple[str, str]] = (
    ("Collection", "collection"),
    ("PatientID", "patient_id"),
    ("StudyInstanceUID", "study_uid"),
    ("StudyDate", "study_date"),
    ("StudyDescription", "study_description"),
    ("SeriesInstanceUID", "series_uid"),
    ("SeriesNumber", "series_number"),
    ("SeriesDate", "series_date"),
    ("SeriesDescription", "series_description"),
    ("Modality", "modality"),
    ("BodyPartExamined", "body_part"),
    ("Manufacturer", "manufacturer"),
    ("ManufacturerModelName", "model"),
    ("SOPClassUID", "sop_class_uid"),
    ("ImageCount", "instances"),
    ("FileSize", "size"),
    ("LicenseName", "license_name"),
    ("LicenseURI", "license_url"),
    ("DataDescriptionURI", "doi"),
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_rows(session: Session, *conditions: ColumnElement[bool]) -> Iterator[str]:
    """The CSV export of the series matching ``conditions``: a header, then one line each."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in CSV_COLUMNS])
    query = ordered(session, joined_series().where(*conditions)).add_columns(
        Collection.license_name, Collection.license_url, Collection.doi
    )
    rows = session.execute(query.execution_options(yield_per=_BATCH))
    for count, row in enumerate(rows, start=1):
        values = _row_values(row)
        writer.writerow([_cell(values[key]) for _, key in CSV_COLUMNS])
        if count % _BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _row_values(row: Any) -> dict[str, Any]:
    values = series_row(row)
    values |= {
        "license_name": row.license_name,
        "license_url": row.license_url,
        "doi": row.doi,
    }
    return values


def manifest_lines(text: str) -> list[str]:
    """The SeriesInstanceUIDs of a ``.tcia`` text (as NBIA's retriever reads it)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().lower() == "listofseriestodownload=":
            return [uid for uid in (x.strip() for x in lines[index + 1 :]) if uid]
    return [line.strip() for line in lines if line.strip() and "=" not in line]


__all__ = [
    "CSV_COLUMNS",
    "MANIFEST_MEDIA_TYPE",
    "csv_rows",
    "download_server_url",
    "manifest_lines",
    "ordered_uids",
    "tcia_header",
    "tcia_manifest",
]
