"""The pages and probes every deployment has: health, and each side's home page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select

from dicomhub import __version__
from dicomhub.core.db import Collection, Series
from dicomhub.errors import ArchiveError
from dicomhub.web.deps import ContextDep, SessionDep

health_router = APIRouter(tags=["health"])
public_router = APIRouter(tags=["pages"])
intake_router = APIRouter(tags=["pages"])


@health_router.get("/healthz")
def healthz(context: ContextDep) -> JSONResponse:
    """Liveness and readiness: the database answers and the blob store is writable."""
    checks: dict[str, str] = {}
    status = 200
    for name, probe in (("database", context.db.ping), ("store", context.store.check)):
        try:
            probe()
            checks[name] = "ok"
        except (ArchiveError, OSError, Exception) as exc:  # a probe reports, never raises
            checks[name] = f"failing: {exc}"
            status = 503
    body = {"status": "ok" if status == 200 else "failing", "side": context.side}
    body |= {"version": __version__, "checks": checks}  # type: ignore[dict-item]
    return JSONResponse(body, status_code=status)


def collection_summaries(session: SessionDep, *, include_limited: bool) -> list[dict[str, Any]]:
    """Each collection with its series and instance counts (one grouped query)."""
    query = (
        select(
            Collection,
            func.count(Series.id),
            func.coalesce(func.sum(Series.instance_count), 0),
        )
        .outerjoin(Series, Series.collection_id == Collection.id)
        .group_by(Collection.id)
        .order_by(Collection.name)
    )
    if not include_limited:
        query = query.where(Collection.access == "public")
    return [
        {"collection": row[0], "series": row[1], "instances": row[2]}
        for row in session.execute(query)
    ]


@public_router.get("/", response_class=HTMLResponse, include_in_schema=False)
def public_home(request: Request, session: SessionDep) -> HTMLResponse:
    """The public landing page: the public collections."""
    rows = collection_summaries(session, include_limited=False)
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, "public/home.html", {"collections": rows}
    )


@intake_router.get("/", response_class=HTMLResponse, include_in_schema=False)
def intake_home(request: Request, session: SessionDep) -> HTMLResponse:
    """The intake landing page: what has been received, per collection."""
    rows = collection_summaries(session, include_limited=True)
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, "intake/home.html", {"collections": rows}
    )
