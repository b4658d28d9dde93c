"""Who may send, and what intake demands of each site.

DIMSE peers map a calling AE title to the collection and site its instances go
to (the listener reads them at each association, so a change needs no restart).
A site policy says whether instances must carry the de-identification kit's
provenance, and which kit id and recipe hash; registering a policy also makes
the collection and site known to intake, so their instances are placed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.auth import audit
from dicomhub.core.db import Collection, Site, utcnow
from dicomhub.core.db.intake import DimsePeer, SitePolicy
from dicomhub.errors import BadRequest, Conflict, NotFound

LOGGER = logging.getLogger(__name__)


def check_ae_title(ae_title: str) -> str:
    """An AE title as DICOM allows it: 1-16 characters, no backslash or control character."""
    title = ae_title.strip()
    if not 0 < len(title) <= 16 or "\\" in title or any(ord(c) < 32 for c in title):
        raise BadRequest(f"invalid AE title {ae_title!r}: 1 to 16 characters, no backslash")
    return title


def _check_name(what: str, value: str) -> str:
    if not 0 < len(value) <= 128 or value != value.strip():
        raise BadRequest(f"a {what} name is 1 to 128 characters without surrounding spaces")
    return value


def ensure_site(session: Session, collection: str, site: str) -> Site:
    """The intake's site row, created (with its collection) if missing."""
    _check_name("collection", collection)
    _check_name("site", site)
    row = session.scalar(select(Collection).where(Collection.name == collection))
    if row is None:
        row = Collection(name=collection)
        session.add(row)
        session.flush()
    found = session.scalar(select(Site).where(Site.collection_id == row.id, Site.name == site))
    if found is None:
        found = Site(collection_id=row.id, name=site)
        session.add(found)
        session.flush()
    return found


def add_peer(
    session: Session, ae_title: str, collection: str, site: str, *, actor: str, origin: str
) -> DimsePeer:
    """Allow ``ae_title`` to C-STORE into ``collection``/``site``.

    Raises
    ------
    Conflict
        The title is already registered (remove it first to move it).
    """
    title = check_ae_title(ae_title)
    ensure_site(session, collection, site)
    if session.scalar(select(DimsePeer).where(DimsePeer.ae_title == title)) is not None:
        raise Conflict(f"AE title {title} is already registered")
    peer = DimsePeer(ae_title=title, collection=collection, site=site)
    session.add(peer)
    session.flush()
    detail = {"collection": collection, "site": site}
    audit(session, actor, "intake.peer.add", "dimse_peer", title, origin, detail)
    return peer


def list_peers(session: Session) -> Sequence[DimsePeer]:
    """Every registered peer, by AE title."""
    return session.scalars(select(DimsePeer).order_by(DimsePeer.ae_title)).all()


def remove_peer(session: Session, ae_title: str, *, actor: str, origin: str) -> None:
    """Stop accepting associations from ``ae_title`` (open ones are refused per C-STORE)."""
    title = ae_title.strip()
    peer = session.scalar(select(DimsePeer).where(DimsePeer.ae_title == title))
    if peer is None:
        raise NotFound(f"no DIMSE peer with AE title {title!r}")
    session.delete(peer)
    session.flush()
    audit(session, actor, "intake.peer.remove", "dimse_peer", title, origin, {})


def set_policy(
    session: Session,
    collection: str,
    site: str,
    *,
    require_deid_provenance: bool,
    kit_id: str | None,
    recipe_hash: str | None,
    actor: str,
    origin: str,
) -> SitePolicy:
    """Create or update a site's policy (and make the site known to intake).

    Raises
    ------
    BadRequest
        Provenance is required but the kit id or recipe hash is missing.
    """
    if require_deid_provenance and not (kit_id and recipe_hash):
        raise BadRequest(
            "requiring de-identification provenance needs the kit id and the recipe hash"
        )
    ensure_site(session, collection, site)
    policy = session.scalar(
        select(SitePolicy).where(SitePolicy.collection == collection, SitePolicy.site == site)
    )
    if policy is None:
        policy = SitePolicy(collection=collection, site=site)
        session.add(policy)
    policy.require_deid_provenance = require_deid_provenance
    policy.kit_id = kit_id or None
    policy.recipe_hash = recipe_hash or None
    policy.updated_at = utcnow()
    session.flush()
    detail = {
        "require_deid_provenance": require_deid_provenance,
        "kit_id": kit_id,
        "recipe_hash": recipe_hash,
    }
    audit(session, actor, "intake.site.policy", "site", f"{collection}/{site}", origin, detail)
    return policy


def list_sites(session: Session) -> list[tuple[str, str, SitePolicy | None]]:
    """Every site intake knows (and every policy), with its policy if it has one."""
    policies = {(p.collection, p.site): p for p in session.scalars(select(SitePolicy))}
    names = session.execute(
        select(Collection.name, Site.name).join(Site, Site.collection_id == Collection.id)
    )
    keys = {(row[0], row[1]) for row in names} | set(policies)
    return [(c, s, policies.get((c, s))) for c, s in sorted(keys)]
