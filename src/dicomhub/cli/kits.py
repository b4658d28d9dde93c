"""`dicomhub kits`: make a submission kit for one collection and site (archive side).

The kit format lives in :mod:`dicomhub.submit.kit`; this command adds what only the
archive has: its secret key (the UID secret and the date offset are derived from it, and
the kit is signed with it), the check that the credential really is a submitter token
for exactly that collection and site, and the intake's record of the kit id and recipe
hash it must find in every instance the site sends.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.cli.users import accounts_session, cli_errors
from dicomhub.context import Database
from dicomhub.core.auth import Role, verify_token
from dicomhub.core.db import Collection, Site, SitePolicy, session_scope
from dicomhub.errors import BadRequest, Forbidden
from dicomhub.settings import Settings, load_settings
from dicomhub.submit.kit import BurnedInRules, Kit, build_kit, load_kit, verify_signature, write_kit

app = typer.Typer(no_args_is_help=True)
console = Console()


def _check_token(settings: Settings, token: str, collection: str, site: str) -> None:
    """The credential must be a live submitter token scoped to exactly this collection/site."""
    public = settings.public()
    with accounts_session(public) as session:
        principal = verify_token(session, token, public.secret_key)
    scope = principal.token
    if scope is None or scope.role is not Role.SUBMITTER:
        raise Forbidden("the kit's credential must be a submitter token (dicomhub tokens create)")
    if (scope.collection, scope.site) != (collection, site):
        raise Forbidden(
            f"the token is scoped to {scope.collection or 'the whole archive'}"
            f"{'/' + scope.site if scope.site else ''}, not {collection}/{site}; "
            "a kit's credential must cover that one collection and site only"
        )


def register(session: Session, kit: Kit) -> None:
    """Record at intake the kit id and recipe hash this site must send (and its place)."""
    row = session.scalar(select(Collection).where(Collection.name == kit.collection))
    if row is None:
        row = Collection(name=kit.collection)
        session.add(row)
        session.flush()
    site = session.scalar(select(Site).where(Site.collection_id == row.id, Site.name == kit.site))
    if site is None:
        session.add(Site(collection_id=row.id, name=kit.site))
    policy = session.scalar(
        select(SitePolicy).where(
            SitePolicy.collection == kit.collection, SitePolicy.site == kit.site
        )
    )
    if policy is None:
        policy = SitePolicy(collection=kit.collection, site=kit.site)
        session.add(policy)
    policy.kit_id = kit.kit_id
    policy.recipe_hash = kit.recipe().recipe_hash()
    policy.require_deid_provenance = True


def _recipe_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read the recipe {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"the recipe {path} must be a table of options")
    return dict(data.get("recipe", data))


def _filter_file(path: Path | None) -> BurnedInRules | None:
    """The burned-in filter's rules from TOML or JSON (a ``[filter]`` table or the top level)."""
    if path is None:
        return None
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"cannot read the filter {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"the filter {path} must be a table of rules")
    try:
        return BurnedInRules.model_validate(data.get("filter", data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"the filter {path} is invalid: {where}: {err['msg']}") from exc


def _default_ca(settings: Settings) -> Path | None:
    cert = settings.intake_tls_cert or settings.resolved_data_dir / "keys" / "intake-cert.pem"
    return cert if cert.exists() else None


@app.command("create")
def create_command(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection.")],
    site: Annotated[str, typer.Option("--site", "-s", help="The submitting site.")],
    token: Annotated[
        str, typer.Option("--token", help="A submitter token for this collection and site.")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Kit file to write.")] = None,
    intake_url: Annotated[
        str | None, typer.Option("--intake-url", help="The intake's HTTPS URL.")
    ] = None,
    ca_bundle: Annotated[
        Path | None, typer.Option("--ca-bundle", help="PEM CA bundle the site should trust.")
    ] = None,
    uid_root: Annotated[str | None, typer.Option("--uid-root", help="The UID root.")] = None,
    date_offset: Annotated[
        int | None, typer.Option("--date-offset", help="Days to shift dates (default derived).")
    ] = None,
    body_part: Annotated[
        str | None, typer.Option("--body-part", help="BodyPartExamined to set.")
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Recipe options (TOML or JSON).")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", min=1, help="Kit lifetime in days.")
    ] = None,
    sponsor: Annotated[
        str | None,
        typer.Option("--sponsor", help="ClinicalTrialSponsorName (default: the collection)."),
    ] = None,
    filter_file: Annotated[
        Path | None,
        typer.Option(
            "--filter", help="Burned-in filter rules (TOML or JSON: modalities, makers, models)."
        ),
    ] = None,
) -> None:
    """Make a signed kit for one collection and site and register it with intake."""
    with cli_errors():
        settings = load_settings()
        secret = settings.resolved_secret().get_secret_value()
        root = uid_root or settings.resolved_uid_root()
        _check_token(settings, token, collection, site)
        rules = _recipe_file(recipe)
        burned_in = _filter_file(filter_file)
        if body_part:
            rules["body_part_examined"] = body_part
        ca_path = ca_bundle or _default_ca(settings)
        body = build_kit(
            collection=collection,
            site=site,
            intake_url=intake_url or f"https://{settings.intake_host}:{settings.intake_port}",
            credential=token,
            secret_key=secret,
            uid_root=root,
            date_offset_days=date_offset,
            ca_bundle=ca_path.read_text() if ca_path else None,
            expires_at=(datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None),
            recipe=rules,
            intake_ae_title=settings.dimse_ae_title,
            sponsor=sponsor,
            burned_in=burned_in,
        )
        target = out or Path(f"kit-{collection}-{site}.json")
        if target.exists():
            raise BadRequest(f"{target} exists; choose another --out")
        write_kit(target, body, secret)
        kit = load_kit(target)
        intake = Database.open(settings.intake_db)
        try:
            intake.require_schema("intake")
            with session_scope(intake.sessions) as session:
                register(session, kit)
        finally:
            intake.close()
        console.print(
            f"kit [bold]{escape(kit.kit_id)}[/bold] for {escape(collection)}/{escape(site)} "
            f"written to {escape(str(target))} (mode 0600; it holds a credential); "
            f"date offset {kit.recipe().date_offset_days} days",
            soft_wrap=True,
        )


@app.command("verify")
def verify_command(
    kit_file: Annotated[Path, typer.Argument(help="The kit file.")],
) -> None:
    """Check a kit's seal and that this archive signed it."""
    with cli_errors():
        kit = load_kit(kit_file)
        secret = load_settings().resolved_secret().get_secret_value()
        if not verify_signature(kit, secret):
            raise Forbidden(f"{kit_file} was not signed by this archive")
        console.print(f"kit {escape(kit.kit_id)} is intact and signed by this archive")
