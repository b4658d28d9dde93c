"""STOW-RS on the intake app: ``POST /dicomweb/studies[/{study}]``, streamed part by part.

The multipart/related body is parsed as it arrives; each part goes to a spool
file (never to memory) and is handed to the intake service as soon as it is
complete, so a 2 GB request costs one chunk of memory.  The answer is the
PS3.18 Store Instances Response: 200 when all were stored, 202 when some
failed, 409 when none was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dicomhub.core.auth import Action, authorize
from dicomhub.errors import ArchiveError, BadRequest
from dicomhub.intake import api
from dicomhub.intake.deps import principal_of, service_of
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import Hasher, IntakeService, IntakeSession, Spooled, StoreResult

LOGGER = logging.getLogger(__name__)
router = APIRouter(tags=["stow"])
router.include_router(api.router)
DICOM_JSON = "application/dicom+json"


class UnsupportedMediaType(ArchiveError):
    """STOW accepts only multipart/related; type="application/dicom"."""

    http_status = 415
    code = "unsupported_media_type"


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/related; type=application/dicom body (415/400 otherwise)."""
    media, *params = [p.strip() for p in content_type.split(";")]
    values = {}
    for param in params:
        key, _, value = param.partition("=")
        values[key.strip().lower()] = value.strip().strip('"')
    if media.lower() != "multipart/related":
        raise UnsupportedMediaType(f"expected multipart/related, got {media or 'nothing'}")
    if values.get("type", "").lower() != "application/dicom":
        raise UnsupportedMediaType('expected type="application/dicom" on multipart/related')
    if not values.get("boundary"):
        raise BadRequest("multipart/related without a boundary")
    return values["boundary"].encode("latin-1")


#: At most this many parts (or BATCH_BYTES) are recorded in one transaction.
BATCH_PARTS = 64
BATCH_BYTES = 256 * 1024 * 1024
#: Fewer parts than this wait for more before they are recorded (unless the body ends).
#: Each transaction costs about as much CPU as parsing two instances, and the intake
#: shares the machine with whatever sends to it: batches of one or two (what a purely
#: greedy policy makes whenever recording keeps up) cost a third more per instance.
MIN_PARTS = 16


def batch_due(parts: int, size: int, *, recording: bool, recorded: bool) -> bool:
    """Whether the parts received so far go to the service now.

    ``recording``: a batch of this request is being recorded; ``recorded``: it has
    finished.  A full batch always goes (waiting for the one being recorded first);
    otherwise parts go as soon as the last batch is recorded and at least
    :data:`MIN_PARTS` have arrived, so receiving and recording overlap and the
    batch size follows the speed of each side.
    """
    if parts >= BATCH_PARTS or size >= BATCH_BYTES:
        return True
    return parts >= MIN_PARTS and (not recording or recorded)


async def _store_parts(
    request: Request, service: IntakeService, session: IntakeSession, study: str | None
) -> list[StoreResult]:
    """Store the parts in batches (:func:`batch_due`) while the body is still arriving."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    results: list[StoreResult] = []
    batch: list[Spooled] = []
    size, seen = 0, 0
    pending: asyncio.Future[list[StoreResult]] | None = None
    try:
        async for spooled in _parts(request.stream(), boundary, service):
            batch.append(spooled)
            size, seen = size + spooled.size, seen + 1
            recorded = pending is not None and pending.done()
            if not batch_due(len(batch), size, recording=pending is not None, recorded=recorded):
                continue
            if pending is not None:
                results.extend(await pending)
            pending = _submit(service, session, batch, study)
            batch, size = [], 0
        if pending is not None:
            results.extend(await pending)
            pending = None
        if batch:
            results.extend(await _submit(service, session, batch, study))
            batch = []
    finally:
        if pending is not None:  # the body failed while a batch was being recorded
            await asyncio.wait([pending])
        for spooled in batch:
            spooled.path.unlink(missing_ok=True)
    if not seen:
        raise BadRequest("no parts found: the boundary does not match the body")
    return results


def _submit(
    service: IntakeService, session: IntakeSession, batch: list[Spooled], study: str | None
) -> asyncio.Future[list[StoreResult]]:
    return asyncio.ensure_future(
        run_in_threadpool(service.store_batch, session, batch, study_uid=study)
    )


async def _parts(
    stream: AsyncIterator[bytes], boundary: bytes, service: IntakeService
) -> AsyncIterator[Spooled]:
    """Yield each part's body as a spooled file, reading the body incrementally."""
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # the first delimiter has no CRLF before it
    handle: Any = None
    path: Any = None
    hasher = Hasher()
    in_headers = False
    done = False
    try:
        async for chunk in stream:
            buffer += chunk
            while not done:
                if handle is None and not in_headers:
                    at = buffer.find(delimiter)
                    if at < 0:
                        buffer = buffer[-len(delimiter) :]
                        break
                    rest = buffer[at + len(delimiter) :]
                    if len(rest) < 2:
                        break
                    if rest.startswith(b"--"):
                        done = True
                        break
                    buffer, in_headers = rest, True
                if in_headers:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > 65536:
                            raise BadRequest("part headers too long")
                        break
                    _check_part_type(buffer[:end])
                    buffer, in_headers = buffer[end + 4 :], False
                    handle, path = service.new_spool_file()
                    hasher = Hasher()
                at = buffer.find(delimiter)
                keep = len(buffer) if at >= 0 else max(0, len(buffer) - len(delimiter))
                body = buffer[: at if at >= 0 else keep]
                handle.write(body)
                hasher.update(body)
                buffer = buffer[len(body) :]
                if at < 0:
                    break
                handle.close()
                yield hasher.spooled(path)
                handle = path = None
    finally:
        if handle is not None:  # a client that went away mid-part: nothing half-stored
            handle.close()
            path.unlink(missing_ok=True)
    if not done and handle is None and in_headers:
        raise BadRequest("the body ends inside a part's headers")


def _check_part_type(raw: bytes) -> None:
    for line in raw.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            media = value.split(";")[0].strip().lower()
            if media != "application/dicom":
                raise UnsupportedMediaType(f"a part of type {media}; only application/dicom")


def store_response(request: Request, results: list[StoreResult]) -> JSONResponse:
    """The PS3.18 Store Instances Response as DICOM JSON, with its HTTP status."""
    referenced, failed = [], []
    for result in results:
        item: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [result.sop_class_uid]} if result.sop_class_uid
            else {"vr": "UI"},
            "00081155": {"vr": "UI", "Value": [result.sop_instance_uid]}
            if result.sop_instance_uid else {"vr": "UI"},
        }  # fmt: skip
        if result.accepted:
            if result.coerced:
                item["00081196"] = {"vr": "US", "Value": [result.acknowledged_status]}
            referenced.append(item)
        else:
            item["00081197"] = {"vr": "US", "Value": [result.status]}
            failed.append(item)
    body: dict[str, Any] = {}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    warned = any(result.accepted and result.coerced for result in results)
    status = 200 if not failed and not warned else 202 if referenced else 409
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON)


async def _stow(request: Request, study: str | None) -> JSONResponse:
    principal = await run_in_threadpool(principal_of, request)
    token = principal.token
    collection = token.collection if token else None
    site = token.site if token else None
    authorize(principal, Action.SUBMIT, collection=collection, site=site)
    client = request.client.host if request.client else ""
    origin = Origin("stow", principal.username, client, collection, site, principal)
    service = service_of(request)
    session = service.open_session(origin)
    results = await _store_parts(request, service, session, study)
    return store_response(request, results)


@router.post("/dicomweb/studies")
async def stow(request: Request) -> JSONResponse:
    """Store instances (STOW-RS)."""
    return await _stow(request, None)


@router.post("/dicomweb/studies/{study}")
async def stow_study(request: Request, study: str) -> JSONResponse:
    """Store instances of one study; instances of other studies fail with 0xA900."""
    return await _stow(request, study)
