"""`dicomhub intake`: status, DIMSE peers and site policies, on the intake database."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from dicomhub.cli.quarantine import intake_context
from dicomhub.cli.users import actor, cli_errors, console, err_console, table, when
from dicomhub.intake import peers, status

app = typer.Typer(no_args_is_help=True)
peers_app = typer.Typer(no_args_is_help=True)
sites_app = typer.Typer(no_args_is_help=True)
app.add_typer(peers_app, name="peers", help="DIMSE peers: calling AE title -> collection/site.")
app.add_typer(sites_app, name="sites", help="Site policies: de-identification provenance.")
ORIGIN = "cli"

Collection = Annotated[str, typer.Argument(help="Collection name.")]
Site = Annotated[str, typer.Argument(help="Site name.")]


@app.command("status")
def status_command(
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    site: Annotated[str | None, typer.Option("--site", "-s")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per collection and site: instances today (UTC) and in all, held by reason, last arrival."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db:
        rows = status.intake_status(db, collection=collection, site=site)
        if as_json:
            console.print_json(json.dumps([row.to_dict() for row in rows]))
            return
        grid = table("collection", "site", "today", "total", "held", "held by reason",
                     "last arrival")  # fmt: skip
        for row in rows:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(row.quarantined.items()))
            grid.add_row(
                escape(row.collection or "?"), escape(row.site or "?"),
                str(row.instances_today), str(row.instances_total), str(row.quarantined_total),
                reasons or "-", when(row.last_arrival),
            )  # fmt: skip
        console.print(grid)


@peers_app.command("add")
def peers_add(
    ae_title: Annotated[str, typer.Argument(help="The peer's calling AE title.")],
    collection: Collection,
    site: Site,
) -> None:
    """Allow a calling AE title to C-STORE into a collection and site."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db, db.begin():
        peer = peers.add_peer(db, ae_title, collection, site, actor=actor(), origin=ORIGIN)
        console.print(f"{escape(peer.ae_title)} -> {escape(collection)}/{escape(site)}")


@peers_app.command("list")
def peers_list() -> None:
    """List the registered DIMSE peers."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db:
        grid = table("AE title", "collection", "site", "registered")
        found = peers.list_peers(db)
        for peer in found:
            grid.add_row(escape(peer.ae_title), escape(peer.collection), escape(peer.site),
                         when(peer.created_at))  # fmt: skip
        console.print(grid)
        if not found:
            err_console.print("no DIMSE peers registered: every association is refused")


@peers_app.command("remove")
def peers_remove(ae_title: Annotated[str, typer.Argument(help="The AE title.")]) -> None:
    """Refuse a calling AE title from now on."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db, db.begin():
        peers.remove_peer(db, ae_title, actor=actor(), origin=ORIGIN)
        console.print(f"removed {escape(ae_title)}")


@sites_app.command("add")
def sites_add(
    collection: Collection,
    site: Site,
    require_deid_provenance: Annotated[
        bool,
        typer.Option(
            "--require-deid-provenance/--no-require-deid-provenance",
            help="Demand the kit's de-identification mark in every instance.",
        ),
    ] = True,
    kit_id: Annotated[str | None, typer.Option("--kit-id", help="The kit issued.")] = None,
    recipe_hash: Annotated[
        str | None, typer.Option("--recipe-hash", help="The kit's recipe hash.")
    ] = None,
) -> None:
    """Register a site (and its collection) at intake, or change its policy."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db, db.begin():
        policy = peers.set_policy(
            db, collection, site, require_deid_provenance=require_deid_provenance,
            kit_id=kit_id, recipe_hash=recipe_hash, actor=actor(), origin=ORIGIN,
        )  # fmt: skip
        need = "required" if policy.require_deid_provenance else "not required"
        console.print(f"{escape(collection)}/{escape(site)}: de-identification provenance {need}")


@sites_app.command("list")
def sites_list() -> None:
    """List the sites intake knows and their policies."""
    with cli_errors(), intake_context() as context, context.db.sessions() as db:
        grid = table("collection", "site", "provenance", "kit id", "recipe hash", "updated")
        for collection, site, policy in peers.list_sites(db):
            if policy is None:
                grid.add_row(escape(collection), escape(site), "required (no kit)", "-", "-", "-")
                continue
            grid.add_row(
                escape(collection), escape(site),
                "required" if policy.require_deid_provenance else "off",
                escape(policy.kit_id or "-"), escape(policy.recipe_hash or "-"),
                when(policy.updated_at),
            )  # fmt: skip
        console.print(grid)
