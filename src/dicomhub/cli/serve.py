"""`dicomhub serve`: the public app, the intake app and the DIMSE listener.

``dicomhub serve`` runs all three in one process (two uvicorn servers on one
event loop, the DIMSE listener in its own threads); each can also run alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from dicomhub.context import IntakeContext, PublicContext
from dicomhub.intake.dimse import DimseListener
from dicomhub.settings import Settings, load_settings
from dicomhub.web.app import create_intake_app, create_public_app

LOGGER = logging.getLogger(__name__)
app = typer.Typer(invoke_without_command=True)
console = Console()


def _public_server(settings: Settings, context: PublicContext) -> uvicorn.Server:
    public = context.settings
    config = uvicorn.Config(
        create_public_app(public, context),
        host=public.host,
        port=public.port,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def _intake_server(settings: Settings, context: IntakeContext) -> uvicorn.Server:
    intake = context.settings
    tls = {}
    if intake.tls_cert and intake.tls_key:
        tls = {"ssl_certfile": str(intake.tls_cert), "ssl_keyfile": str(intake.tls_key)}
    config = uvicorn.Config(
        create_intake_app(intake, context),
        host=intake.host,
        port=intake.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        **tls,  # type: ignore[arg-type]
    )
    return uvicorn.Server(config)


def intake_url(settings: Settings) -> str:
    scheme = "https" if settings.intake_tls_cert and settings.intake_tls_key else "http"
    return f"{scheme}://{settings.intake_host}:{settings.intake_port}/"


def announce(settings: Settings, *, public: bool, intake: bool, dimse: bool) -> None:
    """Print where each part listens."""
    if public:
        console.print(f"public web   http://{settings.public_host}:{settings.public_port}/")
    if intake:
        console.print(f"intake web   {intake_url(settings)}")
    if dimse:
        console.print(
            f"intake DIMSE {settings.dimse_ae_title}@{settings.dimse_host}:{settings.dimse_port}"
        )


def run(
    settings: Settings, *, public: bool = True, intake: bool = True, dimse: bool = True
) -> None:
    """Run the chosen parts until interrupted.

    Contexts are built (and checked) before anything listens, so a bad setting
    or an unmigrated database stops the start with one clear line.
    """
    public_context = PublicContext.from_settings(settings.public()) if public else None
    intake_context = IntakeContext.from_settings(settings.intake()) if intake else None
    for context in (public_context, intake_context):
        if context is not None:
            for job_id in context.jobs.recover_interrupted():
                LOGGER.warning("job %s was interrupted by a restart; marked failed", job_id)
    listener = None
    if dimse:
        listener = DimseListener(IntakeContext.from_settings(settings.intake()))
        listener.start()
    servers = []
    if public_context is not None:
        servers.append(_public_server(settings, public_context))
    if intake_context is not None:
        servers.append(_intake_server(settings, intake_context))
    announce(settings, public=public, intake=intake, dimse=dimse)
    try:
        if servers:
            asyncio.run(_serve_all(servers))
        elif listener is not None:
            listener.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if listener is not None:
            listener.stop()
        for context in (public_context, intake_context):
            if context is not None:
                context.close()


async def _serve_all(servers: list[uvicorn.Server]) -> None:
    await asyncio.gather(*(server.serve() for server in servers))


PortOption = Annotated[int | None, typer.Option(help="Override the configured port.")]


@app.callback()
def serve_all(ctx: typer.Context) -> None:
    """Run the public app, the intake app and the DIMSE listener together."""
    if ctx.invoked_subcommand is None:
        run(load_settings())


@app.command("public")
def serve_public(port: PortOption = None) -> None:
    """Run only the public app."""
    settings = load_settings(**({"public_port": port} if port else {}))
    run(settings, intake=False, dimse=False)


@app.command("intake")
def serve_intake(port: PortOption = None) -> None:
    """Run only the intake web app."""
    settings = load_settings(**({"intake_port": port} if port else {}))
    run(settings, public=False, dimse=False)


@app.command("dimse")
def serve_dimse(port: PortOption = None) -> None:
    """Run only the DIMSE listener."""
    settings = load_settings(**({"dimse_port": port} if port else {}))
    run(settings, public=False, intake=False)
