"""`dicomhub tokens`: create, list and revoke API tokens (shown once, stored as hashes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape

from dicomhub.cli.users import (
    ORIGIN,
    CollectionOption,
    SiteOption,
    accounts_session,
    actor,
    cli_errors,
    console,
    err_console,
    public_settings,
    scope_of,
    table,
    when,
)
from dicomhub.core.auth import create_token, get_user, list_tokens, revoke_token
from dicomhub.core.auth.tokens import token_state

app = typer.Typer(no_args_is_help=True)

_STATE_STYLE = {"active": "green", "expired": "yellow", "revoked": "red"}


@app.command("create")
def create_command(
    username: Annotated[str, typer.Argument(help="Whose token.")],
    role: Annotated[str, typer.Option("--role", "-r", help="The role the token acts as.")],
    collection: CollectionOption = None,
    site: SiteOption = None,
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", min=1, help="Lifetime in days (default: none).")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
) -> None:
    """Create a token and print it once on stdout; only its keyed hash is kept."""
    with cli_errors():
        settings = public_settings()
        lifetime = timedelta(days=expires_days) if expires_days is not None else None
        with accounts_session(settings) as session:
            row, plaintext = create_token(
                session,
                get_user(session, username),
                role,
                collection,
                site,
                lifetime,
                name,
                secret_key=settings.secret_key,
                actor=actor(),
                origin=ORIGIN,
            )
        err_console.print(
            f"token {row.id} for [bold]{escape(username)}[/bold] as {escape(row.role)} "
            f"({escape(scope_of(row.collection, row.site))}), expires {when(row.expires_at)}; "
            "copy it now, it is not shown again:",
            soft_wrap=True,
        )
        console.print(plaintext, markup=False, highlight=False, soft_wrap=True)


@app.command("list")
def list_command(
    username: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
) -> None:
    """List tokens (never their secrets)."""
    with cli_errors(), accounts_session() as session:
        grid = table(
            "id", "user", "name", "prefix", "role", "scope", "state", "created", "expires",
            "last used",
        )  # fmt: skip
        for token in list_tokens(session, username):
            state = token_state(token)
            grid.add_row(
                str(token.id),
                escape(token.user.username),
                escape(token.name),
                token.prefix,
                token.role,
                escape(scope_of(token.collection, token.site)),
                f"[{_STATE_STYLE[state]}]{state}[/]",
                when(token.created_at),
                when(token.expires_at),
                when(token.last_used_at),
            )
        console.print(grid)


@app.command("revoke")
def revoke_command(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token for good."""
    with cli_errors():
        with accounts_session() as session:
            token = revoke_token(session, token_id, actor=actor(), origin=ORIGIN)
            owner = token.user.username
        console.print(f"revoked token {token_id} of [bold]{escape(owner)}[/bold]")
