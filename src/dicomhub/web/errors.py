"""Map the archive's exception tree to HTTP responses, JSON or HTML by what the client wants.

This is the only place an ArchiveError becomes an HTTP status; services never
raise HTTP exceptions themselves.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dicomhub.errors import ArchiveError, BadRequest

LOGGER = logging.getLogger(__name__)


def wants_html(request: Request) -> bool:
    """Browsers asking for a page get HTML; API clients (and anything unsure) get JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def render_error(request: Request, error: ArchiveError) -> Response:
    """One response for one error, in the form the client asked for."""
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
    if wants_html(request) and hasattr(request.app.state, "templates"):
        return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
            request,
            "error.html",
            {"error": error, "status": error.http_status},
            status_code=error.http_status,
            headers=headers,
        )
    return JSONResponse(error.to_dict(), status_code=error.http_status, headers=headers)


async def _archive_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ArchiveError)
    if exc.http_status >= 500:
        LOGGER.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return render_error(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
        for err in exc.errors()
    ]
    return render_error(request, BadRequest("invalid request", detail={"problems": problems}))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error = ArchiveError(str(exc.detail))
    error.http_status = exc.status_code
    error.code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return render_error(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    LOGGER.exception("unhandled error on %s %s", request.method, request.url.path)
    return render_error(request, ArchiveError("internal error; the event was logged"))


def install_error_handlers(app: FastAPI) -> None:
    """Attach the mapping to an app."""
    app.add_exception_handler(ArchiveError, _archive_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
