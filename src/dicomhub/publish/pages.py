"""The public HTML pages: search with htmx facets, basket, collections, login.

Pages render the same query layer as the JSON API.  htmx requests get
partials (the results block, the basket badge); the same URLs without htmx
work as plain forms and redirects, so the site is usable without JavaScript.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from dicomhub.core.auth import Principal
from dicomhub.errors import BadRequest, Unauthorized
from dicomhub.publish import basket as baskets
from dicomhub.publish.access import Visibility
from dicomhub.publish.collections import collection_detail, list_collections
from dicomhub.publish.facets import faceted_search
from dicomhub.publish.filters import Page, ParsedQuery, parse_query
from dicomhub.publish.http import (
    DbDep,
    PrincipalDep,
    VisibilityDep,
    basket_owner,
    log_out,
    public_context,
    require_same_origin,
    sign_in,
)

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE_SIZE = 25
BASKET_PAGE = 100


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _basket_summary(
    request: Request, db: Session, seen: Visibility, who: Principal
) -> dict[str, int]:
    owner = basket_owner(request, who, create=False)
    return baskets.summary_of_nothing() if owner is None else baskets.summary(db, seen, owner)


def _render(
    request: Request,
    template: str,
    values: dict[str, Any],
    *,
    db: Session,
    seen: Visibility,
    who: Principal,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    values = {"principal": who, "basket": _basket_summary(request, db, seen, who), **values}
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, values, status_code=status, headers=headers
    )


def _search_values(db: Session, seen: Visibility, parsed: ParsedQuery) -> dict[str, Any]:
    result, facets = faceted_search(db, seen, parsed.filter, parsed.page)
    params = parsed.filter.to_params()
    page = parsed.page

    def page_link(offset: int) -> str:
        return urlencode([*params, ("offset", str(offset)), ("limit", str(page.limit))])

    return {
        "filter": parsed.filter,
        "params": params,
        "query": urlencode(params),
        "result": result,
        "facets": facets,
        "prev_link": page_link(max(page.offset - page.limit, 0)) if page.offset else None,
        "next_link": page_link(page.offset + page.limit)
        if page.offset + page.limit < result.total
        else None,
    }


def _parse_page_query(request: Request) -> ParsedQuery:
    items = list(request.query_params.multi_items())
    if not any(name == "limit" for name, _ in items):
        items.append(("limit", str(PAGE_SIZE)))
    return parse_query(items, strict=False)


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep) -> Response:
    """The search page: filters with faceted counts, and the first page of results."""
    values = _search_values(db, seen, _parse_page_query(request))
    return _render(request, "public/search.html", values, db=db, seen=seen, who=who)


@router.get("/search/results", response_class=HTMLResponse)
def search_results(request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep) -> Response:
    """The results block (facets and table), swapped in by htmx as filters change."""
    values = _search_values(db, seen, _parse_page_query(request))
    headers = {"HX-Push-Url": f"/search?{request.url.query}"}
    return _render(
        request, "public/_results.html", values, db=db, seen=seen, who=who, headers=headers
    )


@router.get("/collections", response_class=HTMLResponse)
def collections_page(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> Response:
    """Every collection the caller may see."""
    values = {"collections": list_collections(db, seen)}
    return _render(request, "public/collections.html", values, db=db, seen=seen, who=who)


@router.get("/collections/{name}", response_class=HTMLResponse)
def collection_page(
    name: str, request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> Response:
    """A collection: description, licence, citation, counts by modality and body part."""
    detail = collection_detail(db, seen, name)
    values = {"c": detail, "search_query": urlencode([("collection", detail["name"])])}
    return _render(request, "public/collection.html", values, db=db, seen=seen, who=who)


# -- basket ----------------------------------------------------------------------


@router.get("/basket", response_class=HTMLResponse)
def basket_page(request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep) -> Response:
    """The basket: counts, total size, exports, and its series."""
    parsed = parse_query(request.query_params.multi_items(), strict=False)
    page = Page(BASKET_PAGE, parsed.page.offset)
    owner = basket_owner(request, who, create=False)
    rows = [] if owner is None else baskets.items(db, seen, owner, page)
    values = {"rows": rows, "page": page}
    return _render(request, "public/basket.html", values, db=db, seen=seen, who=who)


async def _form_items(request: Request) -> list[tuple[str, str]]:
    form = await request.form()
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


@router.post("/basket/add", response_class=HTMLResponse)
async def basket_add(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> Response:
    """Add a series, a study, a patient or a whole search (form field ``kind``)."""
    require_same_origin(request)
    items = await _form_items(request)
    fields = dict(items)
    kind = fields.get("kind", "")
    owner = basket_owner(request, who, create=True)
    assert owner is not None
    if kind == "series":
        added = baskets.add_series(db, seen, owner, [fields.get("uid", "")])
    elif kind == "study":
        added = baskets.add_studies(db, seen, owner, [fields.get("uid", "")])
    elif kind == "patient":
        collection, patient = fields.get("collection", ""), fields.get("patient_id", "")
        added = baskets.add_patients(db, seen, owner, collection, [patient])
    elif kind == "search":
        filters = [(k, v) for k, v in items if k not in ("kind",)]
        added = baskets.add_search(db, seen, owner, parse_query(filters, strict=False).filter)
    else:
        raise BadRequest("kind must be series, study, patient or search")
    db.commit()
    if not _htmx(request):
        return RedirectResponse("/basket", status_code=303)
    values = {"added": added}
    return _render(request, "public/_basket_badge.html", values, db=db, seen=seen, who=who)


@router.post("/basket/remove")
async def basket_remove(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> Response:
    """Take one series out (or, with ``all=1``, empty the basket)."""
    require_same_origin(request)
    fields = dict(await _form_items(request))
    owner = basket_owner(request, who, create=False)
    if owner is not None:
        if fields.get("all") == "1":
            baskets.clear(db, owner)
        elif fields.get("hidden") == "1":
            baskets.remove_hidden(db, seen, owner)
        else:
            baskets.remove_series(db, owner, [fields.get("uid", "")])
        db.commit()
    return RedirectResponse("/basket", status_code=303)


# -- login -------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep) -> Response:
    """The local login form."""
    return _render(request, "public/login.html", {"failed": False}, db=db, seen=seen, who=who)


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request, db: DbDep, seen: VisibilityDep, who: PrincipalDep
) -> Response:
    """Check the password; on success back to the search page, else the form again (401)."""
    require_same_origin(request)
    fields = dict(await _form_items(request))
    try:
        username, password = fields.get("username", "")[:128], fields.get("password", "")[:1024]
        sign_in(request, db, public_context(request).settings.ldap, username, password)
    except Unauthorized:
        db.rollback()
        values = {"failed": True, "username": fields.get("username", "")[:128]}
        return _render(request, "public/login.html", values, db=db, seen=seen, who=who, status=401)
    return RedirectResponse("/search", status_code=303)


@router.post("/logout")
def logout_submit(request: Request) -> Response:
    """Forget the login in this browser."""
    require_same_origin(request)
    log_out(request)
    return RedirectResponse("/", status_code=303)
