"""Responses shared by the NBIA API versions: series ZIPs, single images, metadata.

v4, v2 and v1 expose the same resources with different rules (which
parameters, which names, whether a token is required); the work is here once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from dicomhub.context import PublicContext
from dicomhub.core.store.base import verified_blob
from dicomhub.errors import BadRequest, NotFound, PayloadTooLarge
from dicomhub.publish.access import Visibility
from dicomhub.publish.nbia import archive, ranges
from dicomhub.publish.nbia.catalog import METADATA_COLUMNS, metadata_row, series_by_uids
from dicomhub.publish.nbia.formats import CSV_DOWNLOAD, render
from dicomhub.publish.nbia.instances import instances_of, one_instance, one_series
from dicomhub.publish.nbia.params import MAX_LIST, uid_list

#: The largest form body accepted (a 50,000-UID list is about 3.3 MB).
MAX_FORM_BYTES = 8 * 1024 * 1024
_YES = frozenset({"yes", "true", "y", "1"})
_NO = frozenset({"no", "false", "n", "0"})


def flag(value: str | None, what: str) -> bool:
    """A Yes/No parameter (absent means no); 400 for anything else."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise BadRequest(f"{what} must be Yes or No, got {value[:40]!r}")


def series_zip(
    db: Session,
    seen: Visibility,
    ctx: PublicContext,
    uid: str,
    *,
    new_names: bool,
    licence: bool,
    include_md5: bool,
) -> StreamingResponse:
    """The ZIP of one visible series; 404 if it is unknown or hidden, 503 if a file is missing."""
    series = one_series(db, seen, uid)
    if series is None:
        raise NotFound(f"no series {uid}")
    instances = instances_of(db, series.id, with_acquisition=new_names)
    if not instances:
        raise NotFound(f"series {uid} holds no images")
    names = (
        archive.new_file_names(instances) if new_names else archive.numbered_names(len(instances))
    )
    text = (
        archive.licence_text(series.name, series.license_name, series.license_url, series.citation)
        if licence
        else None
    )
    members = archive.plan(instances, names, licence=text, include_md5=include_md5)
    archive.check_blobs(ctx.store, members)
    headers = {"Content-Disposition": f'attachment; filename="{uid}.zip"'}
    length = archive.zip_length(members)
    if length is not None:
        headers["Content-Length"] = str(length)
    body = archive.stream(ctx.store, members, datetime.now(UTC))
    return StreamingResponse(body, media_type="application/zip", headers=headers)


def single_image(
    db: Session,
    seen: Visibility,
    ctx: PublicContext,
    series_uid: str,
    sop_uid: str,
    *,
    range_header: str | None = None,
    if_range: str | None = None,
) -> Response:
    """One instance's file, as stored, with its length; one byte range if asked (206, 416).

    404 if the instance is unknown or hidden.
    """
    instance = one_instance(db, seen, series_uid, sop_uid)
    if instance is None:
        raise NotFound(f"no instance {sop_uid} in series {series_uid}")
    if not ctx.store.exists(instance.blob_key):
        raise NotFound(f"the file of instance {sop_uid} is missing")
    tag = ranges.etag(instance.sha256)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": tag,
        "Content-Disposition": f"attachment; filename={sop_uid}.dcm",
    }
    try:
        wanted = ranges.requested(range_header, instance.size, if_range, tag)
    except ranges.Unsatisfiable:
        headers["Content-Range"] = f"bytes */{instance.size}"
        return Response(status_code=416, headers=headers)
    if wanted is None:
        body = verified_blob(ctx.store, instance.blob_key, instance.size, instance.sha256)
        headers["Content-Length"] = str(instance.size)
        return StreamingResponse(body, media_type="application/dicom", headers=headers)
    part = ranges.sliced_blob(ctx.store, instance.blob_key, instance.size, instance.sha256, wanted)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range
    return StreamingResponse(part, status_code=206, media_type="application/dicom", headers=headers)


async def posted_form(request: Request) -> list[tuple[str, str]]:
    """A form body (urlencoded or multipart) as pairs, refusing an oversized one."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"a form of at most {MAX_FORM_BYTES // (1024 * 1024)} MB")
    form = await request.form(max_fields=MAX_LIST + 100, max_part_size=MAX_FORM_BYTES)
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


def series_metadata(
    db: Session, seen: Visibility, lists: Sequence[str], fmt: str = CSV_DOWNLOAD
) -> Response:
    """v4 getSeriesMetadata: the visible series among the posted UIDs, in the order sent."""
    uids = uid_list(lists)
    rows = [metadata_row(row) for row in series_by_uids(db, seen, uids)]
    return render(rows, METADATA_COLUMNS, fmt, filename="SeriesMetaData.csv")


#: v1/v2 getSeriesMetaData headers; the Java CLI reads them by position.
LEGACY_METADATA_COLUMNS: Sequence[str] = (
    "Series UID",
    "Collection",
    "3rd Party Analysis",
    "Data Description URI",
    "Subject ID",
    "Study UID",
    "Study Description",
    "Study Date",
    "Series Description",
    "Manufacturer",
    "Modality",
    "SOP Class UID",
    "Number of Images",
    "File Size",
    "File Location",
    "Series Number",
    "License Name",
    "License URL",
    "Annotation Size",
    "Date Released",
    "Series Date",
    "Protocol Name",
    "Body Part Examined",
    "Annotations Flag",
    "Manufacturer Model Name",
    "Software Versions",
    "TimeStamp",
)
_PLAIN = re.compile(r"[^a-zA-Z0-9 .-]")


def legacy_series_metadata(db: Session, seen: Visibility, uid: str) -> Response:
    """v1/v2 getSeriesMetaData: one series as CSV; 204 when it is unknown or hidden."""
    found = series_by_uids(db, seen, [uid])
    if not found:
        return Response(status_code=204)
    row = found[0]

    def plain(text: str | None) -> str:
        return _PLAIN.sub("", text or "")

    def iso(value: object) -> str:
        return "" if value is None else str(value)

    values = [
        row.series_instance_uid,
        row.name,
        "NO",
        row.doi,
        row.patient_id,
        row.study_instance_uid,
        plain(row.study_description),
        iso(row.study_date),
        plain(row.series_description),
        row.manufacturer,
        row.modality,
        row.sop_class_uid,
        row.instance_count,
        row.total_size,
        f"./{row.name}/{row.patient_id}/{row.study_instance_uid}/{row.series_instance_uid}",
        "" if row.series_number is None else row.series_number,
        row.license_name,
        row.license_url,
        0,
        iso(row.created_at),
        iso(row.series_date),
        row.protocol_name,
        row.body_part_examined,
        "",
        row.manufacturer_model_name,
        row.software_versions,
        iso(row.created_at),
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LEGACY_METADATA_COLUMNS)
    writer.writerow(values)
    return Response(buffer.getvalue(), media_type="text/csv")
