"""The one place the public side decides who sees which collection.

Public collections are visible to everyone, the anonymous guest included.  A
limited collection is visible only to a principal that may ``view_limited`` in
it (a collection grant, an archive-wide curator or manager, an admin), as
:func:`dicomhub.core.auth.reach` and :func:`~dicomhub.core.auth.can` say.

Everything that reads the catalogue for a caller goes through a
:class:`Visibility`: queries get its SQL condition, single lookups its
:meth:`Visibility.require_collection`.  A collection the caller may not see
behaves exactly as one that does not exist (404, same message), so no page,
count or error reveals its name, its size or its UIDs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, false, or_, select, true
from sqlalchemy.orm import Session

from dicomhub.core.auth import Action, Principal, authenticate_password, can, reach
from dicomhub.core.auth.ldap import authenticate_ldap
from dicomhub.core.db import Access, Collection, User
from dicomhub.errors import NotFound
from dicomhub.settings import LdapSettings

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Visibility:
    """Which collections one principal may see, as data and as SQL.

    Parameters
    ----------
    principal:
        Who is asking.
    all_limited:
        The principal may see every limited collection (archive-wide grant).
    limited:
        The names of the limited collections they may see otherwise.
    """

    principal: Principal
    all_limited: bool
    limited: frozenset[str]

    def collection_clause(self) -> ColumnElement[bool]:
        """A condition on :class:`Collection` rows: true for the visible ones."""
        public = Collection.access == Access.PUBLIC
        if self.all_limited:
            return true()
        if not self.limited:
            return public
        return or_(public, Collection.name.in_(sorted(self.limited)))

    def collection_ids(self) -> Select[Any]:
        """A sub-select of the visible collections' ids (for ``series.collection_id IN``)."""
        return select(Collection.id).where(self.collection_clause())

    def sees(self, collection: Collection) -> bool:
        """Whether this principal may see ``collection`` (checked with ``can``)."""
        if collection.access == Access.PUBLIC:
            return True
        return can(self.principal, Action.VIEW_LIMITED, collection=collection.name)

    def require_collection(self, session: Session, name: str) -> Collection:
        """The collection called ``name`` if visible; NotFound (same words) otherwise."""
        found = session.scalar(select(Collection).where(Collection.name == name))
        if found is None or not self.sees(found):
            if found is not None:
                LOGGER.info("hid limited collection from %s", self.principal.username)
            raise NotFound(f"no collection named {name!r}")
        return found


def visibility(principal: Principal) -> Visibility:
    """The :class:`Visibility` of ``principal`` (no database needed: grants are in it)."""
    where = reach(principal, Action.VIEW_LIMITED)
    return Visibility(principal, where.everywhere, where.collections)


def nothing() -> ColumnElement[bool]:
    """A condition matching no row (used when a filter names no visible collection)."""
    return false()


# -- login: local accounts and the directory -------------------------------------------


def authenticate(
    session: Session, ldap: LdapSettings | None, username: str, password: str, origin: str
) -> Principal:
    """The principal of a username and password: a local account's, or the directory's.

    A local account always logs in with its own password (the directory is not
    asked, so a directory entry of the same name cannot take it over); any
    other name goes to the directory when one is configured.  Both refuse with
    the same words.
    """
    user = session.scalar(select(User).where(User.username == username))
    if ldap is not None and (user is None or user.source == "ldap"):
        return authenticate_ldap(session, ldap, username, password, origin=origin)
    return authenticate_password(session, username, password, origin=origin)
