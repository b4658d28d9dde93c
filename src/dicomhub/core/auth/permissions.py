"""What each role may do, and the one check every edge (web, CLI, DIMSE) calls.

A grant is archive-wide (``collection`` is None) or narrowed to a collection,
and a submitter's grant may be narrowed further to a site.  A request is
allowed when some grant of the principal both carries the action and covers the
collection/site asked about.  A token narrows this further: the token's own
scope must allow the request *and* the user must still hold the token's role
there, so revoking a grant silently disarms the tokens built on it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from dicomhub.core.auth.principal import Grant, Principal
from dicomhub.core.auth.roles import Role
from dicomhub.errors import Forbidden, Unauthorized

LOGGER = logging.getLogger(__name__)


class Action(enum.StrEnum):
    """Something a caller may ask the archive to do."""

    VIEW_PUBLIC = "view_public"
    VIEW_LIMITED = "view_limited"
    SUBMIT = "submit"
    VIEW_SUBMISSIONS = "view_submissions"
    VIEW_INTAKE = "view_intake"
    CURATE = "curate"
    PROMOTE = "promote"
    MANAGE_COLLECTION = "manage_collection"
    GRANT_ACCESS = "grant_access"
    VIEW_QUARANTINE = "view_quarantine"
    RELEASE_QUARANTINE = "release_quarantine"
    VIEW_AUDIT = "view_audit"
    SUPPORT_READ = "support_read"
    MANAGE_USERS = "manage_users"
    MANAGE_JOBS = "manage_jobs"


#: What a caller without any credential may do.
ANONYMOUS_ACTIONS = frozenset({Action.VIEW_PUBLIC})

_CURATOR = frozenset(
    {
        Action.VIEW_PUBLIC,
        Action.VIEW_LIMITED,
        Action.VIEW_SUBMISSIONS,
        Action.VIEW_INTAKE,
        Action.CURATE,
        Action.VIEW_QUARANTINE,
    }
)

#: The permission matrix.  Admin holds every action, present and future.
ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {
    Role.USER: frozenset({Action.VIEW_PUBLIC, Action.VIEW_LIMITED}),
    Role.SUBMITTER: frozenset({Action.VIEW_PUBLIC, Action.SUBMIT, Action.VIEW_SUBMISSIONS}),
    Role.CURATOR: _CURATOR,
    Role.MANAGER: _CURATOR
    | {
        Action.PROMOTE,
        Action.MANAGE_COLLECTION,
        Action.GRANT_ACCESS,
        Action.RELEASE_QUARANTINE,
        Action.VIEW_AUDIT,
        Action.MANAGE_JOBS,
    },
    Role.SUPPORT: frozenset({Action.VIEW_PUBLIC, Action.SUPPORT_READ, Action.VIEW_AUDIT}),
    Role.ADMIN: frozenset(Action),
}

#: Actions a role carries only when its grant names a collection.  An
#: archive-wide ``user`` grant is just an account; access to a limited
#: collection is always given collection by collection.
COLLECTION_BOUND: Mapping[Role, frozenset[Action]] = {
    Role.USER: frozenset({Action.VIEW_LIMITED}),
}


def role_actions(role: Role, *, scoped: bool) -> frozenset[Action]:
    """The actions ``role`` carries on an archive-wide (``scoped=False``) or scoped grant."""
    actions = ROLE_ACTIONS[role]
    if not scoped:
        actions = actions - COLLECTION_BOUND.get(role, frozenset())
    return actions


def grant_allows(grant: Grant, action: Action, collection: str | None, site: str | None) -> bool:
    """Whether this one grant allows ``action`` on ``collection``/``site``."""
    scoped = grant.collection is not None
    return action in role_actions(grant.role, scoped=scoped) and grant.covers(collection, site)


def can(
    principal: Principal,
    action: Action | str,
    *,
    collection: str | None = None,
    site: str | None = None,
) -> bool:
    """Whether ``principal`` may do ``action`` on ``collection`` (and ``site``).

    Parameters
    ----------
    principal:
        Who is asking, as built by a login, a token check or :data:`ANONYMOUS`.
    action:
        An :class:`Action` or its name.
    collection, site:
        What the action touches; None asks about the whole archive, which only
        an archive-wide grant covers.
    """
    action = Action(action)
    if principal.anonymous:
        return action in ANONYMOUS_ACTIONS
    if principal.token is None:
        return any(grant_allows(g, action, collection, site) for g in principal.grants)
    scope = principal.token
    if not grant_allows(scope, action, collection, site):
        return False
    # The token only narrows: the user must still hold that role (or be admin) here.
    return any(
        g.role in (scope.role, Role.ADMIN) and grant_allows(g, action, collection, site)
        for g in principal.grants
    )


def authorize(
    principal: Principal,
    action: Action | str,
    *,
    collection: str | None = None,
    site: str | None = None,
) -> None:
    """Raise unless ``principal`` may do ``action``; the one gate of web and CLI alike.

    Raises
    ------
    Unauthorized
        The caller is anonymous and the action needs a login.
    Forbidden
        The caller is known but no grant (or token scope) allows the action there.
    """
    action = Action(action)
    if can(principal, action, collection=collection, site=site):
        return
    where = _where(collection, site)
    if principal.anonymous:
        raise Unauthorized(f"log in to {action.value.replace('_', ' ')}")
    LOGGER.info("denied %s %s%s", principal.username, action.value, where)
    detail: dict[str, str] = {"action": action.value}
    if collection is not None:
        detail["collection"] = collection
    if site is not None:
        detail["site"] = site
    raise Forbidden(f"{principal.username} may not {action.value}{where}", detail=detail)


@dataclass(frozen=True)
class Reach:
    """Where a principal may do an action: everywhere, or in these collections only."""

    everywhere: bool
    collections: frozenset[str]

    def __contains__(self, collection: object) -> bool:
        return self.everywhere or collection in self.collections


def reach(principal: Principal, action: Action | str) -> Reach:
    """The collections ``principal`` may do ``action`` in (for filtering lists and queries).

    A site-narrowed grant counts its collection: callers must still check the
    site of each item with :func:`can`.
    """
    action = Action(action)
    if principal.anonymous:
        return Reach(action in ANONYMOUS_ACTIONS, frozenset())
    if can(principal, action):
        return Reach(True, frozenset())
    candidates = {g.collection for g in principal.grants if g.collection is not None}
    if principal.token is not None and principal.token.collection is not None:
        candidates = {principal.token.collection}
    allowed = frozenset(c for c in candidates if _can_somewhere_in(principal, action, c))
    return Reach(False, allowed)


def _can_somewhere_in(principal: Principal, action: Action, collection: str) -> bool:
    if can(principal, action, collection=collection):
        return True
    sites = {g.site for g in principal.grants if g.collection == collection and g.site}
    if principal.token is not None and principal.token.site:
        sites.add(principal.token.site)
    return any(can(principal, action, collection=collection, site=s) for s in sites)


def _where(collection: str | None, site: str | None) -> str:
    if collection is None:
        return " archive-wide"
    return f" in collection {collection}" + (f" at site {site}" if site else "")
