"""`dicomhub quarantine`: list, inspect, release and delete what intake refused.

Release runs the intake checks again on the kept bytes, so it succeeds once the
cause is fixed (a site policy changed, a collection or site registered, a
conflicting instance removed); otherwise the item stays held with the new reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.markup import escape

from dicomhub.cli.users import actor, cli_errors, console, err_console, table, when
from dicomhub.context import IntakeContext
from dicomhub.core.db import QuarantineState
from dicomhub.intake import quarantine
from dicomhub.intake.service import IntakeService
from dicomhub.settings import load_settings

app = typer.Typer(no_args_is_help=True)
ORIGIN = "cli"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ItemArgument = Annotated[int, typer.Argument(help="The quarantine item id.")]


@contextmanager
def intake_context() -> Iterator[IntakeContext]:
    """The intake context of the configured instance (databases must be migrated)."""
    context = IntakeContext.from_settings(load_settings().intake())
    try:
        yield context
    finally:
        context.close()


@app.command("list")
def list_command(
    state: Annotated[
        str, typer.Option("--state", help="held, released, deleted or all.")
    ] = QuarantineState.HELD.value,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: JsonOption = False,
) -> None:
    """List quarantined items, newest first."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db:
        wanted = None if state == "all" else QuarantineState(state)
        items = quarantine.list_items(
            db, state=wanted, reason=reason, collection=collection, limit=limit
        )
        if as_json:
            console.print_json(json.dumps([quarantine.item_dict(i) for i in items]))
            return
        grid = table("id", "reason", "state", "collection/site", "SOP Instance UID", "origin",
                     "arrived", "detail")  # fmt: skip
        for item in items:
            place = f"{item.collection or '?'}/{item.site or '?'}"
            grid.add_row(
                str(item.id), item.reason_code, item.state.value, escape(place),
                item.sop_instance_uid, escape(item.origin), when(item.created_at),
                escape(item.detail[:200]),
            )  # fmt: skip
        console.print(grid)
        if not items:
            err_console.print("nothing in quarantine")


@app.command("show")
def show_command(item_id: ItemArgument, as_json: JsonOption = False) -> None:
    """Show one item: why it is held, where it came from, and what its bytes say."""
    with cli_errors(), intake_context() as context:
        with context.db.sessions() as db:
            item = quarantine.get_item(db, item_id)
            body = quarantine.item_dict(item)
        body["attributes"] = quarantine.attributes_of(context.store, item.blob_key, item.state)
        if as_json:
            console.print_json(json.dumps(body))
            return
        grid = table("field", "value")
        for name, value in body.items():
            if name != "attributes":
                grid.add_row(name, escape(str(value)))
        for name, value in body["attributes"].items():
            grid.add_row(f"[dim]{name}[/dim]", escape(value))
        console.print(grid)


@app.command("release")
def release_command(item_id: ItemArgument) -> None:
    """Run intake again on an item's bytes; it is released if they are accepted now."""
    with cli_errors(), intake_context() as context:
        result = IntakeService(context).release(item_id, actor=actor(), origin=ORIGIN)
        if result.accepted:
            console.print(
                f"released {item_id}: {result.outcome.value} {escape(result.sop_instance_uid)}"
            )
            return
        err_console.print(
            f"[yellow]still held[/yellow] {item_id}: {result.reason}: {escape(result.detail)}",
            soft_wrap=True,
        )
        raise typer.Exit(2)


@app.command("delete")
def delete_command(
    item_id: ItemArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a held item's bytes for good (its record stays, marked deleted)."""
    with cli_errors(), intake_context() as context:
        if not yes:
            typer.confirm(f"delete quarantine item {item_id} and its bytes?", abort=True)
        with context.db.sessions() as db, db.begin():
            quarantine.delete_item(db, context.store, item_id, actor=actor(), origin=ORIGIN)
        console.print(f"deleted {item_id}")
