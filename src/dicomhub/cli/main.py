"""The ``dicomhub`` command: one root, one sub-command group per stage.

Groups are mounted here and nowhere else; each lives in the module named for it
and calls the same core functions the web apps call.
"""

from __future__ import annotations

import logging
import sys

import typer

from dicomhub.cli import db, demo, jobs, kits, promote, sample, serve, submit, tokens, users
from dicomhub.cli import intake as intake_cli
from dicomhub.cli import quarantine as quarantine_cli
from dicomhub.errors import ArchiveError

app = typer.Typer(
    name="dicomhub",
    help="A public archive for research imaging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db", help="Database migrations.")
app.add_typer(serve.app, name="serve", help="Run the public app, the intake app and DIMSE.")
app.add_typer(users.app, name="users", help="Accounts and role grants.")
app.add_typer(tokens.app, name="tokens", help="API tokens.")
app.add_typer(jobs.app, name="jobs", help="Bulk jobs and their progress.")
app.add_typer(sample.app, name="sample", help="Synthetic sample data (no real patient data).")
app.add_typer(submit.app, name="submit", help="De-identify with a kit, send and verify (site).")
app.add_typer(kits.app, name="kits", help="Submission kits for sites.")
app.add_typer(intake_cli.app, name="intake", help="Intake status, DIMSE peers, site policies.")
app.add_typer(quarantine_cli.app, name="quarantine", help="What intake refused, and why.")
app.command("demo")(demo.demo)
app.command("promote")(promote.promote)


def main() -> None:
    """Console entry point: archive errors become one red line and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except ArchiveError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
