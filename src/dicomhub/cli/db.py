"""`dicomhub db`: migrate and inspect the intake and public databases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from dicomhub.cli.common import Side, side_urls
from dicomhub.core.db.migrate import current, upgrade
from dicomhub.settings import load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()

SideOption = Annotated[Side, typer.Option("--side", help="Which database.")]


@app.command("upgrade")
def upgrade_command(side: SideOption = Side.BOTH, revision: str = "head") -> None:
    """Migrate the database(s) to the newest schema."""
    for name, url in side_urls(load_settings(), side):
        upgrade(url, revision)
        console.print(f"{name}: at revision [bold]{current(url)}[/bold]")


@app.command("current")
def current_command(side: SideOption = Side.BOTH) -> None:
    """Show the schema revision of the database(s)."""
    for name, url in side_urls(load_settings(), side):
        console.print(f"{name}: {current(url) or 'not migrated'}")
