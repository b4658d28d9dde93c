"""DICOMweb routes under ``/dicomweb``: QIDO-RS searches and WADO-RS retrieval.

The caller is found as on the NBIA routes (bearer API or OAuth token, session
cookie, or the anonymous guest), so a viewer sees exactly the collections its
user may see.  CORS for browser viewers is the app's (``cors_origins``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from dicomhub.errors import NotFound
from dicomhub.publish.dicomweb import attributes, media, qido, retrieve
from dicomhub.publish.http import ContextDep, DbDep
from dicomhub.publish.nbia import ranges
from dicomhub.publish.nbia.auth import NbiaVisibilityDep

PREFIX = "/dicomweb"
DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"
router = APIRouter(prefix=PREFIX, tags=["dicomweb"])


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _check_json_accept(request: Request) -> None:
    ranges = media.parse_accept(request.headers.get("accept"))
    for item in ranges:
        if item.media_type in ("*/*", "application/*", DICOM_JSON, "application/json"):
            return
    raise media.NotAcceptable(f"search results are served as {DICOM_JSON}")


def _warnings(warnings: Iterable[str]) -> dict[str, str]:
    notes = [f'299 dicomhub "{text}"' for text in warnings]
    return {"Warning": ", ".join(notes)} if notes else {}


def _json(value: Any, warnings: Iterable[str] = ()) -> Response:
    return Response(
        json.dumps(value, separators=(",", ":")), media_type=DICOM_JSON, headers=_warnings(warnings)
    )


def _results(results: list[dict[str, Any]], warnings: Iterable[str]) -> Response:
    """A search's answer: the matches, or 204 No Content when there are none (PS3.18).

    dicomweb-client and OHIF read an empty 204 as an empty result list.
    """
    if not results:
        return Response(status_code=204, headers=_warnings(warnings))
    return _json(results, warnings)


def _search(request: Request, level: str, fixed: dict[str, str]) -> qido.Query:
    _check_json_accept(request)
    items = list(request.query_params.multi_items())
    query = qido.parse(items, level)
    if fixed:
        fixed_query = qido.parse(fixed.items(), level)
        query.conditions.extend(fixed_query.conditions)
        query.narrow = query.narrow or fixed_query.narrow
    return query


# -- QIDO-RS --------------------------------------------------------------------------------


@router.get("/studies")
def search_studies(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Search for studies."""
    query = _search(request, qido.STUDY, {})
    rows = query.page(qido.studies(db, seen, query))
    counts = qido.study_counts(db, seen, [study.id for study, _ in rows])
    base = _base(request)
    results = [
        attributes.study_result(study, patient, counts.get(study.id, (0, 0, [])), base)
        for study, patient in rows
    ]
    return _results(results, query.warnings)


def _level_search(
    request: Request,
    level: str,
    fixed: dict[str, str],
    find: Callable[[qido.Query], Iterable[tuple[Any, ...]]],
    result: Callable[..., dict[str, Any]],
) -> Response:
    """Series and instance searches: each row's entities, then the query and base URL."""
    query = _search(request, level, fixed)
    base = _base(request)
    results = [result(*row, query, base) for row in query.page(list(find(query)))]
    return _results(results, query.warnings)


def _series_search(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, fixed: dict[str, str]
) -> Response:
    return _level_search(
        request,
        qido.SERIES,
        fixed,
        lambda query: qido.series(db, seen, query),
        attributes.series_result,
    )


@router.get("/series")
def search_all_series(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Search for series in every study."""
    return _series_search(request, db, seen, {})


@router.get("/studies/{study}/series")
def search_study_series(
    study: str, request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """Search for series of one study."""
    return _series_search(request, db, seen, {"StudyInstanceUID": study})


def _instance_search(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, fixed: dict[str, str]
) -> Response:
    return _level_search(
        request,
        qido.INSTANCE,
        fixed,
        lambda query: qido.instances(db, seen, query),
        attributes.instance_result,
    )


@router.get("/instances")
def search_all_instances(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Search for instances anywhere."""
    return _instance_search(request, db, seen, {})


@router.get("/studies/{study}/instances")
def search_study_instances(
    study: str, request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """Search for instances of one study."""
    return _instance_search(request, db, seen, {"StudyInstanceUID": study})


@router.get("/studies/{study}/series/{series}/instances")
def search_series_instances(
    study: str, series: str, request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """Search for instances of one series."""
    fixed = {"StudyInstanceUID": study, "SeriesInstanceUID": series}
    return _instance_search(request, db, seen, fixed)


# -- WADO-RS --------------------------------------------------------------------------------


def _instances_response(
    request: Request, ctx: ContextDep, items: list[retrieve.Stored]
) -> StreamingResponse:
    syntaxes = media.dicom_syntaxes(media.parse_accept(request.headers.get("accept")))
    boundary = media.boundary()
    parts = retrieve.instance_parts(ctx.store, items, syntaxes, _base(request), boundary)
    for item in items:
        if not ctx.store.exists(item.blob_key):
            raise NotFound(f"the file of instance {item.sop_uid} is missing")
    headers = {"Content-Length": str(parts.length)} if parts.length is not None else {}
    media_type = media.multipart_type("application/dicom", boundary, parts.syntax)
    return StreamingResponse(parts.body, media_type=media_type, headers=headers)


@router.get("/studies/{study}")
def retrieve_study(
    study: str, request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """Every visible instance of a study."""
    return _instances_response(request, ctx, retrieve.find_instances(db, seen, study))


@router.get("/studies/{study}/series/{series}")
def retrieve_series(
    study: str, series: str, request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """Every instance of a series."""
    return _instances_response(request, ctx, retrieve.find_instances(db, seen, study, series))


@router.get("/studies/{study}/series/{series}/instances/{sop}")
def retrieve_instance(
    study: str,
    series: str,
    sop: str,
    request: Request,
    db: DbDep,
    seen: NbiaVisibilityDep,
    ctx: ContextDep,
) -> Response:
    """One instance."""
    items = retrieve.find_instances(db, seen, study, series, sop)
    return _instances_response(request, ctx, items)


def _metadata_response(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, *uids: str
) -> Response:
    """The metadata of the visible instances ``uids`` (study, series, SOP) narrow down to."""
    _check_json_accept(request)
    items = retrieve.find_instances(db, seen, *uids)
    return _json(retrieve.metadata(items, _base(request)))


@router.get("/studies/{study}/metadata")
def study_metadata(study: str, request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """The metadata of every visible instance of a study."""
    return _metadata_response(request, db, seen, study)


@router.get("/studies/{study}/series/{series}/metadata")
def series_metadata(
    study: str, series: str, request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """The metadata of every instance of a series."""
    return _metadata_response(request, db, seen, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
def instance_metadata(
    study: str, series: str, sop: str, request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """The metadata of one instance."""
    return _metadata_response(request, db, seen, study, series, sop)


def _parts(
    part_type: str,
    syntax: str | None,
    chunks: list[bytes],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    boundary = media.boundary()
    content_type = part_type + (f"; transfer-syntax={syntax}" if syntax else "")

    def body() -> Iterator[bytes]:
        for chunk in chunks:
            yield media.part_header(boundary, content_type)
            yield chunk
            yield b"\r\n"
        yield media.closing(boundary)

    payload = b"".join(body())
    return Response(
        payload,
        status_code=status_code,
        media_type=media.multipart_type(part_type, boundary, syntax),
        headers=headers,
    )


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}")
def retrieve_frames(
    study: str,
    series: str,
    sop: str,
    frame_list: str,
    request: Request,
    db: DbDep,
    seen: NbiaVisibilityDep,
    ctx: ContextDep,
) -> Response:
    """Frames of one instance: native (octet-stream) or, if accepted, compressed as stored."""
    numbers = retrieve.frame_numbers(frame_list)
    (item,) = retrieve.find_instances(db, seen, study, series, sop)
    ranges = media.parse_accept(request.headers.get("accept"))
    part_type, syntax, chunks = retrieve.frames(ctx.store, item, numbers, ranges)
    return _parts(part_type, syntax, chunks)


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulk/{path}")
def retrieve_bulk(
    study: str,
    series: str,
    sop: str,
    path: str,
    request: Request,
    db: DbDep,
    seen: NbiaVisibilityDep,
    ctx: ContextDep,
) -> Response:
    """One bulk data element of an instance (its metadata's BulkDataURI points here).

    Multipart by default, as PS3.18 asks; a client that accepts a single-part
    ``application/octet-stream`` first (OHIF's ``singlepart: 'bulkdata'``) gets
    the bare bytes.  Either way one byte range of the value is served (206)
    when ``Range`` asks for it, as dicomweb-client's ``byte_range`` does.
    """
    (item,) = retrieve.find_instances(db, seen, study, series, sop)
    value = retrieve.bulk(ctx.store, item, path)
    preferred = media.parse_accept(request.headers.get("accept"))[0]
    range_header, if_range = request.headers.get("range"), request.headers.get("if-range")
    multipart = preferred.media_type != OCTET
    return _ranged_bulk(value, range_header, if_range, multipart=multipart)


def _validators(value: bytes) -> dict[str, str]:
    return {"Accept-Ranges": "bytes", "ETag": ranges.etag(hashlib.sha256(value).hexdigest())}


def _unsatisfiable(value: bytes) -> Response:
    """416 for a range wholly past the end, with the value's length (RFC 9110 §15.5.17)."""
    return Response(status_code=416, headers={"Content-Range": f"bytes */{len(value)}"})


def _ranged_bulk(
    value: bytes, range_header: str | None, if_range: str | None, *, multipart: bool
) -> Response:
    """The value, or the one range asked for (206), multipart or single-part."""
    headers = _validators(value)
    try:
        wanted = ranges.requested(range_header, len(value), if_range, headers["ETag"])
    except ranges.Unsatisfiable:
        return _unsatisfiable(value)
    piece, status = value, 200
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range
        piece, status = value[wanted.first : wanted.last + 1], 206
    if multipart:
        return _parts(OCTET, None, [piece], status_code=status, headers=headers)
    return Response(piece, status_code=status, media_type=OCTET, headers=headers)
