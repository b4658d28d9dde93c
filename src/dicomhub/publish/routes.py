"""The public JSON API under ``/api/``: search, facets, collections, series, basket, exports.

Routes are thin: they parse with :mod:`dicomhub.publish.filters`, run the query
layer with the caller's :class:`~dicomhub.publish.access.Visibility`, and let
the error mapping of the web shell turn archive errors into statuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from dicomhub.errors import BadRequest, NotFound, Unauthorized
from dicomhub.publish import basket as baskets
from dicomhub.publish.collections import (
    collection_detail,
    list_collections,
    list_releases,
    visible_release,
)
from dicomhub.publish.facets import facet_counts, faceted_search
from dicomhub.publish.filters import Page, SeriesFilter, check_name, check_uid, parse_query
from dicomhub.publish.http import (
    ContextDep,
    DbDep,
    PrincipalDep,
    VisibilityDep,
    basket_owner,
    log_out,
    public_context,
    require_same_origin,
    sign_in,
)
from dicomhub.publish.manifests import (
    MANIFEST_MEDIA_TYPE,
    basket_id,
    csv_rows,
    ordered_uids,
    tcia_manifest,
)
from dicomhub.publish.query import search_series, series_detail, series_scope
from dicomhub.publish.zipstream import zip_length, zip_series

router = APIRouter(prefix="/api", tags=["public"])


class UidList(BaseModel):
    """A list of UIDs in a request body."""

    uids: list[str] = Field(min_length=1, max_length=10_000)


class PatientList(BaseModel):
    """Patients of one collection."""

    collection: str = Field(min_length=1, max_length=128)
    patient_ids: list[str] = Field(min_length=1, max_length=10_000)


class ShareName(BaseModel):
    """The name to share a basket under."""

    name: str = Field(min_length=1, max_length=64)


class Credentials(BaseModel):
    """A local username and password."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


@router.get("/search")
def search(request: Request, db: DbDep, seen: VisibilityDep) -> dict[str, Any]:
    """Series matching the filters (one page), with the total; ``facets=1`` adds counts."""
    parsed = parse_query(request.query_params.multi_items(), extra=("facets",))
    if parsed.extra.get("facets", "").lower() in ("1", "true", "yes"):
        result, counts = faceted_search(db, seen, parsed.filter, parsed.page)
        return result.to_json() | {"facets": counts}
    return search_series(db, seen, parsed.filter, parsed.page).to_json()


@router.get("/facets")
def facets(request: Request, db: DbDep, seen: VisibilityDep) -> dict[str, Any]:
    """Series counts per modality, body part, manufacturer and collection for the filters."""
    parsed = parse_query(request.query_params.multi_items())
    return {"facets": facet_counts(db, seen, parsed.filter)}


@router.get("/collections")
def collections(db: DbDep, seen: VisibilityDep) -> list[dict[str, Any]]:
    """The collections the caller may see, with their counts."""
    return list_collections(db, seen)


@router.get("/collections/{name}")
def collection(name: str, db: DbDep, seen: VisibilityDep) -> dict[str, Any]:
    """One collection: description, licence, citation, counts by modality and body part."""
    return collection_detail(db, seen, name)


@router.get("/releases")
def releases(db: DbDep, seen: VisibilityDep, collection: str | None = None) -> list[dict[str, Any]]:
    """Published releases (counts, recipe hash, manifest sha256), of one collection if named."""
    name = None if collection is None else check_name(collection, "collection")
    return list_releases(db, seen, name)


@router.get("/releases/{number}/manifest.json")
def release_manifest(number: str, db: DbDep, seen: VisibilityDep, ctx: ContextDep) -> Response:
    """A release's manifest (every instance and its sha256) as promotion stored it."""
    release = visible_release(db, seen, _positive_int(number, "release number"))
    key, sha, name = release.manifest_key, release.manifest_sha256, f"release-{release.id:08d}"
    db.close()  # the manifest may be large; do not hold a connection while it streams
    return StreamingResponse(
        ctx.store.open(key),
        media_type="application/json",
        headers={
            "Content-Length": str(ctx.store.size(key)),
            "Content-Disposition": f'attachment; filename="{name}.json"',
            "X-Content-SHA256": sha,
        },
    )


@router.get("/series/{uid}")
def series(uid: str, db: DbDep, seen: VisibilityDep) -> dict[str, Any]:
    """One series with its study, patient and collection."""
    return series_detail(db, seen, uid)


@router.get("/search/manifest.tcia")
def search_manifest(request: Request, db: DbDep, seen: VisibilityDep, ctx: ContextDep) -> Response:
    """A ``.tcia`` manifest of every series a search matches (all pages)."""
    parsed = parse_query(request.query_params.multi_items())
    scope = series_scope(db, seen, parsed.filter)
    text = "".join(tcia_manifest(ordered_uids(db, *scope.conditions), ctx.settings.base_url))
    return _manifest_response(text)


@router.post("/manifest")
def manifest_for_uids(body: UidList, db: DbDep, seen: VisibilityDep, ctx: ContextDep) -> Response:
    """A ``.tcia`` manifest of the listed series; 404 (nothing partial) if any is not visible."""
    wanted = SeriesFilter(series_uids=tuple(dict.fromkeys(check_uid(u) for u in body.uids)))
    scope = series_scope(db, seen, wanted)
    uids = list(ordered_uids(db, *scope.conditions))
    missing = set(wanted.series_uids) - set(uids)
    if missing:
        raise NotFound(
            f"no series {sorted(missing)[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    return _manifest_response("".join(tcia_manifest(uids, ctx.settings.base_url)))


def _manifest_response(text: str) -> Response:
    name = basket_id()
    return Response(
        text,
        media_type=MANIFEST_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- the basket ----------------------------------------------------------------


#: How often (seconds) a guest's first add also sweeps out expired guest baskets.
SWEEP_EVERY = 3600.0
_last_sweep: dict[str, float] = {}


def _owner(request: Request, principal: Any, *, create: bool) -> baskets.Owner | None:
    owner = basket_owner(request, principal, create=create)
    if create and owner is not None and owner.session_key is not None:
        _sweep_now_and_then(request)
    return owner


def _sweep_now_and_then(request: Request) -> None:
    """Expire stale guest baskets at most once per :data:`SWEEP_EVERY` per process.

    Guest baskets are only ever created here, so sweeping on the way costs
    nothing while nobody uses the archive, needs no scheduler, and bounds how
    many guest baskets can pile up.
    """
    context = public_context(request)
    key = context.settings.database_url
    now = time.monotonic()
    if now - _last_sweep.get(key, -SWEEP_EVERY) < SWEEP_EVERY:
        return
    _last_sweep[key] = now
    with context.db.sessions() as session:
        baskets.sweep_guest_baskets(session, context.settings.guest_basket_days)
        session.commit()


@router.get("/basket")
def basket_summary(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Counts and total size of the caller's basket."""
    owner = _owner(request, who, create=False)
    found = None if owner is None else baskets.find_basket(db, owner)
    if found is None:
        return {**baskets.summary_of_nothing(), "id": None, "shared_name": None}
    counts = baskets.summary_of(db, seen, found)
    return {**counts, "id": found.id, "shared_name": found.shared_name}


@router.get("/basket/items")
def basket_items(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """One page of the series in the basket."""
    parsed = parse_query(request.query_params.multi_items())
    owner = _owner(request, who, create=False)
    page = parsed.page
    rows = [] if owner is None else baskets.items(db, seen, owner, page)
    return {"limit": page.limit, "offset": page.offset, "results": rows}


def _add(
    request: Request, db: DbDep, seen: VisibilityDep, who: Any, add: Callable[[baskets.Owner], int]
) -> dict[str, Any]:
    """Every way of filling the basket shares this: the first addition creates the basket."""
    owner = _owner(request, who, create=True)
    assert owner is not None
    added = add(owner)
    db.commit()
    owner = _owner(request, who, create=False)
    assert owner is not None
    return {"added": added, "basket": baskets.summary(db, seen, owner)}


@router.post("/basket/series")
def basket_add_series(
    body: UidList, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Add series by SeriesInstanceUID."""
    require_same_origin(request)
    return _add(
        request, db, seen, who, lambda owner: baskets.add_series(db, seen, owner, body.uids)
    )


@router.post("/basket/studies")
def basket_add_studies(
    body: UidList, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Add every series of the listed studies."""
    require_same_origin(request)
    return _add(
        request, db, seen, who, lambda owner: baskets.add_studies(db, seen, owner, body.uids)
    )


@router.post("/basket/patients")
def basket_add_patients(
    body: PatientList, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Add every series of the listed patients of one collection."""
    require_same_origin(request)
    return _add(
        request,
        db,
        seen,
        who,
        lambda owner: baskets.add_patients(db, seen, owner, body.collection, body.patient_ids),
    )


@router.post("/basket/search")
def basket_add_search(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Add every series a search matches (the filters as query parameters), server-side."""
    require_same_origin(request)
    parsed = parse_query(request.query_params.multi_items())
    return _add(
        request, db, seen, who, lambda owner: baskets.add_search(db, seen, owner, parsed.filter)
    )


@router.post("/basket/remove")
def basket_remove(
    body: UidList, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Take series out of the basket."""
    require_same_origin(request)
    owner = _owner(request, who, create=False)
    removed = 0 if owner is None else baskets.remove_series(db, owner, body.uids)
    db.commit()
    summary = baskets.summary_of_nothing() if owner is None else baskets.summary(db, seen, owner)
    return {"removed": removed, "basket": summary}


@router.delete("/basket")
def basket_clear(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Empty the basket."""
    require_same_origin(request)
    owner = _owner(request, who, create=False)
    if owner is not None:
        baskets.clear(db, owner)
        db.commit()
    return {"basket": baskets.summary_of_nothing()}


def _export(request: Request, db: DbDep, seen: VisibilityDep, who: Any) -> tuple[int, int]:
    owner = _owner(request, who, create=False)
    if owner is None:
        raise NotFound("the basket is empty")
    return baskets.exportable(db, seen, owner)


@router.get("/basket/manifest.tcia")
def basket_manifest(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep, ctx: ContextDep
) -> Response:
    """The basket as a ``.tcia`` manifest (NBIA Data Retriever, tcia_utils)."""
    ident, _count = _export(request, db, seen, who)
    uids = ordered_uids(db, baskets.in_basket(ident))
    return _manifest_response("".join(tcia_manifest(uids, ctx.settings.base_url)))


@router.post("/basket/share")
def basket_share(
    body: ShareName, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> dict[str, Any]:
    """Share the logged-in user's basket under a unique name (NBIA getContentsByName)."""
    require_same_origin(request)
    if who.anonymous or who.user_id is None:
        raise Unauthorized("log in to share a basket")
    basket = baskets.share(db, baskets.Owner(user_id=who.user_id), body.name)
    db.commit()
    return {"id": basket.id, "shared_name": basket.shared_name}


@router.delete("/basket/share")
def basket_unshare(request: Request, db: DbDep, who: PrincipalDep) -> dict[str, Any]:
    """Stop sharing the logged-in user's basket."""
    require_same_origin(request)
    if who.anonymous or who.user_id is None:
        raise Unauthorized("log in to share a basket")
    baskets.unshare(db, baskets.Owner(user_id=who.user_id))
    db.commit()
    return {"shared_name": None}


@router.get("/baskets/{basket_id}/manifest.tcia")
def basket_manifest_by_id(
    basket_id: str,
    request: Request,
    db: DbDep,
    seen: VisibilityDep,
    who: PrincipalDep,
    ctx: ContextDep,
) -> Response:
    """A basket's ``.tcia`` manifest by id: the owner's (all or 403), or a shared one's.

    The owner gets what ``/api/basket/manifest.tcia`` gives; anyone else, once
    the basket is shared, the series of it they may see themselves.
    """
    ident = _positive_int(basket_id, "basket id")
    basket, owned = baskets.reachable_basket(db, ident, _owner(request, who, create=False))
    conditions = [baskets.in_basket(basket.id)]
    if owned:
        baskets.exportable_basket(db, seen, basket)
    else:
        conditions.append(baskets.visible_series(seen))
    uids = list(ordered_uids(db, *conditions))
    if not uids:
        raise NotFound("the basket is empty")
    return _manifest_response("".join(tcia_manifest(uids, ctx.settings.base_url)))


def _positive_int(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 12 and int(text) > 0):
        raise BadRequest(f"{what} must be a positive integer, got {text[:40]!r}")
    return int(text)


@router.get("/basket/series.csv")
def basket_csv(request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep) -> Response:
    """The basket's series metadata as CSV."""
    ident, _count = _export(request, db, seen, who)
    text = "".join(csv_rows(db, baskets.in_basket(ident)))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="basket-series.csv"'},
    )


@router.get("/basket/download.zip")
def basket_zip(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep, ctx: ContextDep
) -> StreamingResponse:
    """Every instance of the basket as one streamed zip (checked before the first byte)."""
    ident, count = _export(request, db, seen, who)
    conditions = [baskets.in_basket(ident), baskets.visible_series(seen)]
    stream = zip_series(
        ctx.db.sessions, ctx.store, conditions, expected_series=count, now=datetime.now(UTC)
    )
    headers = {"Content-Disposition": 'attachment; filename="dicomhub-basket.zip"'}
    length = zip_length(ctx.db.sessions, conditions)
    if length is not None:
        headers["Content-Length"] = str(length)
    return StreamingResponse(stream, media_type="application/zip", headers=headers)


# -- login ---------------------------------------------------------------------


@router.post("/login")
def login(body: Credentials, request: Request, db: DbDep, ctx: ContextDep) -> dict[str, Any]:
    """Log in with a local password or through the directory; the session cookie keeps it."""
    require_same_origin(request)
    principal = sign_in(request, db, ctx.settings.ldap, body.username, body.password)
    return {"username": principal.username}


@router.post("/logout")
def logout(request: Request) -> dict[str, Any]:
    """Forget the login in this browser."""
    require_same_origin(request)
    log_out(request)
    return {"username": None}


@router.get("/me")
def me(who: PrincipalDep) -> dict[str, Any]:
    """Who the archive thinks is asking."""
    return {
        "username": None if who.anonymous else who.username,
        "anonymous": who.anonymous,
        "grants": sorted(str(g) for g in who.grants),
    }


__all__ = ["Page", "router"]
