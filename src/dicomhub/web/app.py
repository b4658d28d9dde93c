"""ASGI composition: one ``create_*_app(settings)`` per side of the wall.

Each app builds its context in the lifespan (so importing this module does
nothing) and mounts the routers of the stages that belong to its side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from dicomhub import __version__
from dicomhub.context import IntakeContext, PublicContext
from dicomhub.intake import routes as intake_routes
from dicomhub.publish import bulk as publish_bulk
from dicomhub.publish import dicomweb as publish_dicomweb
from dicomhub.publish import http as publish_http
from dicomhub.publish import nbia as publish_nbia
from dicomhub.publish import pages as publish_pages
from dicomhub.publish import routes as publish_routes
from dicomhub.settings import IntakeSettings, PublicSettings
from dicomhub.web import pages
from dicomhub.web.deps import get_principal
from dicomhub.web.errors import install_error_handlers

WEB = Path(__file__).resolve().parent


def _templates(side: str) -> Jinja2Templates:
    templates = Jinja2Templates(directory=WEB / "templates")
    templates.env.globals.update(side=side, version=__version__)
    return templates


def _lifespan(
    given: PublicContext | IntakeContext | None,
    build: Callable[[], PublicContext | IntakeContext],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's context for its lifetime: the one given (the caller closes it) or a new one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = given or build()
        app.state.context = ctx
        try:
            yield
        finally:
            if given is None:
                ctx.close()

    return lifespan


def _base_app(side: str, lifespan: Callable[[FastAPI], object]) -> FastAPI:
    app = FastAPI(
        title=f"dicomhub {side}",
        version=__version__,
        lifespan=lifespan,  # type: ignore[arg-type]
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.templates = _templates(side)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    install_error_handlers(app)
    return app


def create_public_app(settings: PublicSettings, context: PublicContext | None = None) -> FastAPI:
    """The public app: search, collection pages, downloads and the standard APIs."""
    app = _base_app("public", _lifespan(context, lambda: PublicContext.from_settings(settings)))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Content-Length", "Content-Type"],
        )
    app.add_middleware(
        SessionMiddleware,
        secret_key=publish_http.session_signing_key(settings.secret_key.get_secret_value()),
        session_cookie="dicomhub_session",
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )
    app.dependency_overrides[publish_http.current_principal] = get_principal
    app.include_router(pages.health_router)
    app.include_router(pages.public_router)
    app.include_router(publish_routes.router)
    app.include_router(publish_bulk.router)
    app.include_router(publish_pages.router)
    for router in (*publish_nbia.routers, publish_dicomweb.router):
        app.include_router(router)
    return app


def create_intake_app(settings: IntakeSettings, context: IntakeContext | None = None) -> FastAPI:
    """The intake app: receiving, quarantine, curation (may hold PHI; never public)."""
    app = _base_app("intake", _lifespan(context, lambda: IntakeContext.from_settings(settings)))
    app.include_router(pages.health_router)
    app.include_router(pages.intake_router)
    app.include_router(intake_routes.router)
    return app
