"""The ``dicomhub`` command: one root, one sub-command group per stage.

Groups are mounted here and nowhere else; each lives in the module named for it
and calls the same core functions the web apps call.
"""

from __future__ import annotations

import logging
import sys

import typer

from dicomhub.cli import download as download_cli
from dicomhub.errors import ArchiveError

LOGGER = logging.getLogger(__name__)

app = typer.Typer(
    name="dicomhub",
    help="A public archive for research imaging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("download")(download_cli.download)


@app.callback()
def _root() -> None:
    """Keep ``dicomhub`` a group even when only ``download`` is installed."""


def _mount_server_groups() -> None:
    """The groups that need the [server] extra; a base install has only ``download``."""
    from dicomhub.cli import db, demo, jobs, kits, promote, sample, serve, submit, tokens, users
    from dicomhub.cli import intake as intake_cli
    from dicomhub.cli import quarantine as quarantine_cli

    app.add_typer(db.app, name="db", help="Database migrations.")
    app.add_typer(serve.app, name="serve", help="Run the public app, the intake app and DIMSE.")
    app.add_typer(users.app, name="users", help="Accounts and role grants.")
    app.add_typer(tokens.app, name="tokens", help="API tokens.")
    app.add_typer(jobs.app, name="jobs", help="Bulk jobs and their progress.")
    app.add_typer(sample.app, name="sample", help="Synthetic sample data (no real patient data).")
    app.add_typer(submit.app, name="submit", help="De-identify with a kit, send and verify (site).")
    app.add_typer(kits.app, name="kits", help="Submission kits for sites.")
    app.add_typer(kits.app, name="kit", hidden=True)  # the singular the kit docs use
    app.add_typer(intake_cli.app, name="intake", help="Intake status, DIMSE peers, site policies.")
    app.add_typer(quarantine_cli.app, name="quarantine", help="What intake refused, and why.")
    app.command("demo")(demo.demo)
    app.command("promote")(promote.promote)


#: Top-level packages of the [server] extra; only their absence is a base install.
SERVER_PACKAGES = frozenset(
    {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pynetdicom",
     "boto3", "botocore", "argon2", "ldap3", "dask", "distributed", "jinja2", "multipart",
     "python_multipart", "itsdangerous", "cryptography", "pylibjpeg", "jpeg_ls"}
)  # fmt: skip

try:
    _mount_server_groups()
except ModuleNotFoundError as exc:  # pip install dicomhub, without [server]
    if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
        raise
    LOGGER.debug("server commands unavailable (%s is not installed)", exc.name)


def main() -> None:
    """Console entry point: archive errors become one red line and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "openjpeg", "httpx", "pynetdicom", "distributed"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        app()
    except ArchiveError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
