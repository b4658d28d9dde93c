"""The intake's JSON API under ``/intake/api``: verification, status and quarantine.

* ``GET /intake/api/verification`` - for the token's collection and site: counts
  and every instance's SOP Instance UID, series, sha256 and size.  Without
  ``limit`` the whole list is streamed; with it, one keyset page and ``next``.
* ``GET /intake/api/status`` - per collection and site (``view_intake``).
* ``GET /intake/api/quarantine[/{id}]``, ``POST .../{id}/release``,
  ``DELETE .../{id}`` - for managers (``view_quarantine``, ``release_quarantine``).

Every route authorizes with :func:`dicomhub.core.auth.authorize`, and services
raise archive errors only; the app maps them to HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dicomhub.context import IntakeContext
from dicomhub.core.auth import Action, Principal, authorize, can, reach
from dicomhub.core.db import QuarantineState
from dicomhub.errors import BadRequest
from dicomhub.intake import quarantine, status, verify
from dicomhub.intake.deps import context_of, principal_of, service_of

LOGGER = logging.getLogger(__name__)
router = APIRouter(prefix="/intake/api", tags=["intake"])

Name = Annotated[str | None, Query(max_length=128)]


# -- verification ---------------------------------------------------------------


def _scope_of(principal: Principal, collection: str | None, site: str | None) -> tuple[str, str]:
    """The token's collection and site, or (for an unnarrowed caller) the ones asked for."""
    token = principal.token
    if token is not None and token.collection is not None:
        collection = collection or token.collection
        site = site or token.site
    if not collection or not site:
        raise BadRequest("say which collection and site (or use a token scoped to one site)")
    authorize(principal, Action.VIEW_SUBMISSIONS, collection=collection, site=site)
    return collection, site


def _stream(
    context: IntakeContext, scope: verify.Scope, counts: dict[str, int], series: str | None
) -> Iterator[bytes]:
    head = {"collection": scope.collection, "site": scope.site, "counts": counts}
    yield json.dumps(head)[:-1].encode() + b', "instances": ['
    after, first = 0, True
    while True:
        with context.db.sessions() as db:  # one short read per page, no long transaction
            items = verify.page(db, scope, after=after, limit=verify.PAGE_SIZE, series_uid=series)
        if items:
            text = ",".join(json.dumps(item.to_dict()) for item in items)
            yield (text if first else "," + text).encode()
            first, after = False, items[-1].id
        if len(items) < verify.PAGE_SIZE:
            break
    yield b'], "next": null}'


@router.get("/verification", response_model=None)
def verification(
    request: Request,
    series: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int | None, Query(ge=1, le=verify.MAX_PAGE_SIZE)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
    collection: Name = None,
    site: Name = None,
) -> JSONResponse | StreamingResponse:
    """What intake holds for the caller's collection and site, for the submitter to verify."""
    principal = principal_of(request)
    collection, site = _scope_of(principal, collection, site)
    context = context_of(request)
    with context.db.sessions() as db:
        scope = verify.resolve_scope(db, collection, site)
        counts = verify.counts(db, scope, series)
        if limit is None:
            items = None
        else:
            items = verify.page(db, scope, after=after, limit=limit, series_uid=series)
    if items is None:
        return StreamingResponse(
            _stream(context, scope, counts, series), media_type="application/json"
        )
    body = {
        "collection": collection,
        "site": site,
        "counts": counts,
        "instances": [item.to_dict() for item in items],
        "next": items[-1].id if len(items) == limit else None,
    }
    return JSONResponse(body)


# -- status -----------------------------------------------------------------------


@router.get("/status")
def intake_status(request: Request, collection: Name = None, site: Name = None) -> JSONResponse:
    """Per collection and site: instances today and in all, held items by reason, last arrival."""
    principal = principal_of(request)
    allowed = reach(principal, Action.VIEW_INTAKE)
    if not allowed.everywhere and not allowed.collections:
        authorize(principal, Action.VIEW_INTAKE, collection=collection, site=site)
    if collection is not None and site is not None:
        authorize(principal, Action.VIEW_INTAKE, collection=collection, site=site)
    with context_of(request).db.sessions() as db:
        rows = status.intake_status(db, collection=collection, site=site)
    visible = [
        row.to_dict()
        for row in rows
        if can(principal, Action.VIEW_INTAKE, collection=row.collection or None, site=row.site)
    ]
    return JSONResponse({"sites": visible, "day_start": status.start_of_day().isoformat()})


# -- quarantine -------------------------------------------------------------------


def _authorize_item(principal: Principal, action: Action, item: Any) -> None:
    authorize(principal, action, collection=item.collection or None, site=item.site or None)


@router.get("/quarantine")
def quarantine_list(
    request: Request,
    state: Annotated[QuarantineState | None, Query()] = QuarantineState.HELD,
    reason: Annotated[str | None, Query(max_length=64)] = None,
    collection: Name = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """Quarantined items the caller may see, newest first."""
    principal = principal_of(request)
    allowed = reach(principal, Action.VIEW_QUARANTINE)
    if collection is not None:
        authorize(principal, Action.VIEW_QUARANTINE, collection=collection)
    elif not allowed.everywhere and not allowed.collections:
        authorize(principal, Action.VIEW_QUARANTINE)
    collections = None if allowed.everywhere else allowed.collections
    with context_of(request).db.sessions() as db:
        items = quarantine.list_items(
            db, state=state, reason=reason, collection=collection, collections=collections,
            limit=limit, offset=offset,
        )  # fmt: skip
        body = [quarantine.item_dict(item) for item in items]
    return JSONResponse({"items": body, "limit": limit, "offset": offset})


@router.get("/quarantine/{item_id}")
def quarantine_show(request: Request, item_id: int) -> JSONResponse:
    """One item, with the main attributes read from its kept bytes."""
    principal = principal_of(request)
    context = context_of(request)
    with context.db.sessions() as db:
        item = quarantine.get_item(db, item_id)
        _authorize_item(principal, Action.VIEW_QUARANTINE, item)
        body = quarantine.item_dict(item)
    body["attributes"] = quarantine.attributes_of(context.store, item.blob_key, item.state)
    return JSONResponse(body)


@router.post("/quarantine/{item_id}/release")
async def quarantine_release(request: Request, item_id: int) -> JSONResponse:
    """Run intake again on the item's bytes (after a fix); released if they are accepted now."""
    principal = await run_in_threadpool(principal_of, request)
    context = context_of(request)
    with context.db.sessions() as db:
        _authorize_item(principal, Action.RELEASE_QUARANTINE, quarantine.get_item(db, item_id))
    origin = request.client.host if request.client else "api"
    service = service_of(request)
    result = await run_in_threadpool(
        service.release, item_id, actor=principal.username, origin=origin
    )
    with context.db.sessions() as db:
        item = quarantine.item_dict(quarantine.get_item(db, item_id))
    answer = {"outcome": result.outcome.value, "reason": result.reason, "detail": result.detail}
    return JSONResponse({"item": item, "result": answer}, status_code=200)


@router.delete("/quarantine/{item_id}")
def quarantine_delete(request: Request, item_id: int) -> JSONResponse:
    """Drop a held item and its bytes (the row stays, marked deleted, for the record)."""
    principal = principal_of(request)
    context = context_of(request)
    origin = request.client.host if request.client else "api"
    with context.db.sessions() as db, db.begin():
        item = quarantine.get_item(db, item_id)
        _authorize_item(principal, Action.RELEASE_QUARANTINE, item)
        deleted = quarantine.delete_item(
            db, context.store, item_id, actor=principal.username, origin=origin
        )
        body = quarantine.item_dict(deleted)
    return JSONResponse({"item": body})
