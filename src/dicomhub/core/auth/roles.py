"""The archive's roles: who someone is to the archive, not what they may do.

What each role allows lives in :mod:`dicomhub.core.auth.permissions`; keeping
the list of roles separate lets the CLI and the database validate a role name
without pulling in the permission matrix.
"""

from __future__ import annotations

import enum

from dicomhub.errors import BadRequest


class Role(enum.StrEnum):
    """A role a user may be granted, archive-wide or narrowed to a collection (and site)."""

    SUBMITTER = "submitter"
    CURATOR = "curator"
    MANAGER = "manager"
    ADMIN = "admin"
    SUPPORT = "support"
    USER = "user"


#: Roles whose grants may be narrowed to a site inside a collection.
SITE_SCOPED_ROLES = frozenset({Role.SUBMITTER})


def parse_role(value: str | Role) -> Role:
    """Turn a role name into a :class:`Role`, or say which names exist.

    Parameters
    ----------
    value:
        A role name as typed on a command line or stored in the database.

    Raises
    ------
    BadRequest
        The name is not a role; the message lists the roles that exist.
    """
    if isinstance(value, Role):
        return value
    try:
        return Role(value.strip().lower())
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise BadRequest(f"unknown role {value!r}; roles are: {names}") from None
