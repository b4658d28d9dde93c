"""Who is asking: a user with their grants, maybe through a token, or an anonymous guest.

A :class:`Principal` is a frozen snapshot built at authentication time, so a
request sees one consistent set of grants and nothing downstream needs the
database to answer "may they?".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dicomhub.core.auth.roles import Role


@dataclass(frozen=True)
class Grant:
    """A role, archive-wide (``collection`` None) or narrowed to a collection and maybe a site."""

    role: Role
    collection: str | None = None
    site: str | None = None

    def covers(self, collection: str | None, site: str | None) -> bool:
        """Whether a request about ``collection``/``site`` falls inside this grant.

        An archive-wide grant covers everything; a collection grant covers that
        collection only (never an archive-wide request), and a site grant that
        site only (never a request that names no site).
        """
        if self.collection is None:
            return True
        if collection != self.collection:
            return False
        return self.site is None or site == self.site

    def __str__(self) -> str:
        if self.collection is None:
            return self.role.value
        return f"{self.role.value}@{self.collection}" + (f"/{self.site}" if self.site else "")


@dataclass(frozen=True)
class TokenScope(Grant):
    """The role and scope an API token was issued for; it narrows, never widens."""

    token_id: int = 0
    name: str = ""


@dataclass(frozen=True)
class Principal:
    """An authenticated user (maybe through a token), or the anonymous guest."""

    username: str
    grants: frozenset[Grant] = field(default_factory=frozenset)
    token: TokenScope | None = None
    user_id: int | None = None
    anonymous: bool = False

    @property
    def roles(self) -> frozenset[Role]:
        """The roles held anywhere (a token narrows this to its own role)."""
        held = frozenset(g.role for g in self.grants)
        if self.token is None:
            return held
        if self.token.role in held or Role.ADMIN in held:
            return frozenset({self.token.role})
        return frozenset()

    @property
    def is_admin(self) -> bool:
        """Holds an archive-wide admin grant (and is not narrowed by a non-admin token)."""
        if self.token is not None and (self.token.role is not Role.ADMIN or self.token.collection):
            return False
        return Grant(Role.ADMIN) in self.grants


#: The caller without any credential.
ANONYMOUS = Principal(username="anonymous", anonymous=True)
