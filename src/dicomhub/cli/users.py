"""`dicomhub users`: accounts and role grants, on the accounts (public) database.

The helpers at the top (opening the accounts database, turning archive errors
into one red line) are shared with ``dicomhub tokens``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from dicomhub.context import Database
from dicomhub.core.auth import (
    create_user,
    get_user,
    grant_role,
    list_users,
    parse_role,
    revoke_role,
    set_active,
    set_password,
)
from dicomhub.core.auth.principal import Grant
from dicomhub.core.auth.users import grants_of
from dicomhub.core.db import session_scope
from dicomhub.errors import ArchiveError, BadRequest
from dicomhub.settings import PublicSettings, load_settings

app = typer.Typer(no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ORIGIN = "cli"

CollectionOption = Annotated[
    str | None, typer.Option("--collection", "-c", help="Narrow the grant to this collection.")
]
SiteOption = Annotated[
    str | None, typer.Option("--site", "-s", help="Narrow a submitter grant to this site.")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first stdin line.")
]


# -- shared with cli/tokens.py ---------------------------------------------


def actor() -> str:
    """Who the audit trail names for a CLI action: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


@contextmanager
def cli_errors() -> Iterator[None]:
    """Report an archive error as one red line on stderr and exit with status 1."""
    try:
        yield
    except ArchiveError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from exc


def public_settings() -> PublicSettings:
    """The public view of the settings (the accounts database and the instance secret)."""
    return load_settings().public()


@contextmanager
def accounts_session(settings: PublicSettings | None = None) -> Iterator[Session]:
    """A unit of work on the accounts database, which must already be migrated."""
    settings = settings or public_settings()
    database = Database.open(settings.database_url)
    try:
        database.require_schema("accounts (public)")
        with session_scope(database.sessions) as session:
            yield session
    finally:
        database.close()


def table(*headers: str) -> Table:
    """A rich table whose cells wrap rather than being cut short on a narrow or piped output."""
    grid = Table()
    for header in headers:
        grid.add_column(header, overflow="fold")
    return grid


def when(value: datetime | None) -> str:
    """A timestamp for tables: UTC, to the minute; a dash for never."""
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def scope_of(collection: str | None, site: str | None) -> str:
    """``collection/site`` or ``archive-wide`` for tables and messages."""
    if collection is None:
        return "archive-wide"
    return collection + (f"/{site}" if site else "")


# -- password input ---------------------------------------------------------


def read_password(from_stdin: bool) -> str:
    """The new password: the first stdin line, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise BadRequest("--password-stdin given but stdin held no password")
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


# -- commands ---------------------------------------------------------------


@app.command("add")
def add_command(
    username: Annotated[str, typer.Argument(help="The new account's name.")],
    email: Annotated[str, typer.Option(help="Contact address.")] = "",
    full_name: Annotated[str, typer.Option("--full-name", help="Display name.")] = "",
    password_stdin: PasswordStdin = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No local password (token-only account).")
    ] = False,
    role: Annotated[str | None, typer.Option("--role", "-r", help="Grant this role.")] = None,
    collection: CollectionOption = None,
    site: SiteOption = None,
) -> None:
    """Create a local user, optionally with a first role grant."""
    with cli_errors():
        if role is None and (collection or site):
            raise BadRequest("--collection and --site narrow a --role; give the role too")
        if password_stdin and no_password:
            raise BadRequest("choose one of --password-stdin and --no-password")
        parsed = parse_role(role) if role is not None else None
        password = None if no_password else read_password(password_stdin)
        with accounts_session() as session:
            user = create_user(
                session,
                username,
                actor=actor(),
                origin=ORIGIN,
                email=email,
                full_name=full_name,
                password=password,
            )
            if parsed is not None:
                grant_role(
                    session, user, parsed, actor=actor(), origin=ORIGIN,
                    collection=collection, site=site,
                )  # fmt: skip
        granted = f" as {Grant(parsed, collection, site)}" if parsed is not None else ""
        console.print(f"created user [bold]{escape(username)}[/bold]{escape(granted)}")


@app.command("list")
def list_command() -> None:
    """List every user with their grants."""
    with cli_errors(), accounts_session() as session:
        grid = table("username", "name", "email", "source", "active", "roles", "last login")
        for user in list_users(session):
            roles = ", ".join(sorted(str(g) for g in grants_of(user))) or "-"
            grid.add_row(
                escape(user.username),
                escape(user.full_name),
                escape(user.email),
                user.source,
                "yes" if user.is_active else "[red]no[/red]",
                escape(roles),
                when(user.last_login_at),
            )
        console.print(grid)


def _change_grant(
    change: Callable[..., object],
    done: str,
    username: str,
    role: str,
    collection: str | None,
    site: str | None,
) -> None:
    """Grant or revoke one role and say so (``done`` words the result around the grant)."""
    with cli_errors():
        with accounts_session() as session:
            user = get_user(session, username)
            change(
                session, user, role, actor=actor(), origin=ORIGIN,
                collection=collection, site=site,
            )  # fmt: skip
        shown = Grant(parse_role(role), collection, site)
        console.print(f"{done.format(escape(str(shown)))} [bold]{escape(username)}[/bold]")


@app.command("grant")
def grant_command(
    username: Annotated[str, typer.Argument(help="Who gets the role.")],
    role: Annotated[str, typer.Argument(help="submitter, curator, manager, admin, ...")],
    collection: CollectionOption = None,
    site: SiteOption = None,
) -> None:
    """Give a user a role, archive-wide or narrowed to a collection (and site)."""
    _change_grant(grant_role, "granted {} to", username, role, collection, site)


@app.command("revoke-role")
def revoke_role_command(
    username: Annotated[str, typer.Argument(help="Whose role to take away.")],
    role: Annotated[str, typer.Argument(help="The role, with the same scope it was granted.")],
    collection: CollectionOption = None,
    site: SiteOption = None,
) -> None:
    """Take a role grant away (its tokens stop working)."""
    _change_grant(revoke_role, "revoked {} from", username, role, collection, site)


@app.command("disable")
def disable_command(username: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Disable an account: no login, and every live token is revoked."""
    with cli_errors():
        with accounts_session() as session:
            revoked = set_active(
                session, get_user(session, username), False, actor=actor(), origin=ORIGIN
            )
        console.print(f"disabled [bold]{escape(username)}[/bold]; revoked {revoked} token(s)")


@app.command("enable")
def enable_command(username: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Enable a disabled account again (its revoked tokens stay revoked)."""
    with cli_errors():
        with accounts_session() as session:
            set_active(session, get_user(session, username), True, actor=actor(), origin=ORIGIN)
        console.print(f"enabled [bold]{escape(username)}[/bold]")


@app.command("set-password")
def set_password_command(
    username: Annotated[str, typer.Argument(help="A local account.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a local account's password."""
    with cli_errors():
        password = read_password(password_stdin)
        with accounts_session() as session:
            user = get_user(session, username)
            set_password(session, user, password, actor=actor(), origin=ORIGIN)
        console.print(f"password of [bold]{escape(username)}[/bold] set")
