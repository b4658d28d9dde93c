"""Accounts: creating users, granting and revoking roles, disabling, local passwords.

Every change is audited in the same unit of work.  Functions add to the
caller's session and flush; the caller commits (``session_scope``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dicomhub.core.auth.audit import audit
from dicomhub.core.auth.passwords import check_password_policy, hash_password
from dicomhub.core.auth.principal import Grant, Principal, TokenScope
from dicomhub.core.auth.roles import SITE_SCOPED_ROLES, Role, parse_role
from dicomhub.core.db import ApiToken, RoleGrant, User, utcnow
from dicomhub.errors import BadRequest, Conflict, NotFound, Unauthorized

LOGGER = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
_SCOPE_NAME_MAX = 128


def check_username(username: str) -> str:
    """Return ``username`` if it is a name the archive accepts, else say why.

    Raises
    ------
    BadRequest
        Empty, longer than 128 characters, or using characters other than
        letters, digits and ``. _ @ + -`` (first character a letter or digit).
    """
    if not USERNAME_RE.fullmatch(username):
        raise BadRequest(
            f"invalid username {username!r}: use 1-128 letters, digits or . _ @ + - "
            "(starting with a letter or digit)"
        )
    return username


def get_user(session: Session, username: str) -> User:
    """The user called ``username``; NotFound if there is none."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    """Every user, by username, with grants loaded."""
    query = select(User).options(selectinload(User.grants)).order_by(User.username)
    return session.scalars(query).all()


def create_user(
    session: Session,
    username: str,
    *,
    actor: Principal | str,
    origin: str,
    email: str = "",
    full_name: str = "",
    password: str | None = None,
    source: str = "local",
) -> User:
    """Create a user (a local password is optional, e.g. for token-only service accounts).

    Raises
    ------
    BadRequest
        Invalid username, or a password that fails the policy.
    Conflict
        The username is taken.
    """
    check_username(username)
    if password is not None:
        check_password_policy(password, username=username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(
        username=username,
        email=email,
        full_name=full_name,
        password_hash=hash_password(password) if password is not None else None,
        source=source,
        is_active=True,
    )
    session.add(user)
    session.flush()
    detail = {"source": source, "email": email, "has_password": password is not None}
    audit(session, actor, "user.create", "user", username, origin, detail)
    return user


def set_password(
    session: Session, user: User, password: str, *, actor: Principal | str, origin: str
) -> None:
    """Give a local user a new password (checked against the policy)."""
    if user.source != "local":
        raise BadRequest(f"{user.username} is a {user.source} account; its password lives there")
    check_password_policy(password, username=user.username)
    user.password_hash = hash_password(password)
    session.flush()
    audit(session, actor, "user.password", "user", user.username, origin)


def set_active(
    session: Session, user: User, active: bool, *, actor: Principal | str, origin: str
) -> int:
    """Enable or disable ``user``; disabling also revokes their live tokens (returns how many)."""
    user.is_active = active
    revoked = 0
    if not active:
        now = utcnow()
        live = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        for token in session.scalars(live):
            token.revoked_at = now
            revoked += 1
    session.flush()
    action = "user.enable" if active else "user.disable"
    audit(session, actor, action, "user", user.username, origin, {"tokens_revoked": revoked})
    return revoked


def check_scope(role: Role, collection: str | None, site: str | None) -> None:
    """Refuse a scope that makes no sense for ``role`` (a site without collection, ...)."""
    if collection is not None and not (0 < len(collection) <= _SCOPE_NAME_MAX):
        raise BadRequest("a collection name is 1 to 128 characters")
    if site is None:
        return
    if collection is None:
        raise BadRequest("a site narrows a collection: give the collection too")
    if role not in SITE_SCOPED_ROLES:
        allowed = ", ".join(sorted(r.value for r in SITE_SCOPED_ROLES))
        raise BadRequest(f"only {allowed} grants may be narrowed to a site")
    if not 0 < len(site) <= _SCOPE_NAME_MAX:
        raise BadRequest("a site name is 1 to 128 characters")


def _find_grant(
    user: User, role: Role, collection: str | None, site: str | None
) -> RoleGrant | None:
    # Looked up in Python: SQL unique constraints treat NULL scopes as distinct.
    for grant in user.grants:
        if (grant.role, grant.collection, grant.site) == (role.value, collection, site):
            return grant
    return None


def _audit_grant(
    session: Session, actor: Principal | str, origin: str, action: str, user: User, grant: Grant
) -> None:
    """Flush a grant's change and audit it; granting and revoking record the same detail."""
    session.flush()
    detail = {"role": grant.role.value, "collection": grant.collection, "site": grant.site}
    audit(session, actor, action, "user", user.username, origin, detail)


def grant_role(
    session: Session,
    user: User,
    role: Role | str,
    *,
    actor: Principal | str,
    origin: str,
    collection: str | None = None,
    site: str | None = None,
) -> RoleGrant:
    """Give ``user`` a role, archive-wide or narrowed to a collection (and, for submitters, a site).

    Raises
    ------
    BadRequest
        Unknown role or a scope the role cannot have.
    Conflict
        The user already holds exactly this grant.
    """
    role = parse_role(role)
    check_scope(role, collection, site)
    if _find_grant(user, role, collection, site) is not None:
        scope = Grant(role, collection, site)
        raise Conflict(f"{user.username} already holds {scope}")
    grant = RoleGrant(role=role.value, collection=collection, site=site)
    user.grants.append(grant)
    _audit_grant(session, actor, origin, "role.grant", user, Grant(role, collection, site))
    return grant


def revoke_role(
    session: Session,
    user: User,
    role: Role | str,
    *,
    actor: Principal | str,
    origin: str,
    collection: str | None = None,
    site: str | None = None,
) -> None:
    """Take a grant away (exact role and scope); tokens built on it stop working.

    Raises
    ------
    NotFound
        The user holds no such grant.
    """
    role = parse_role(role)
    grant = _find_grant(user, role, collection, site)
    if grant is None:
        raise NotFound(f"{user.username} holds no {Grant(role, collection, site)} grant")
    user.grants.remove(grant)
    _audit_grant(session, actor, origin, "role.revoke", user, Grant(role, collection, site))


def grants_of(user: User) -> frozenset[Grant]:
    """The user's grants as :class:`Grant` values (unknown stored roles are skipped)."""
    grants = set()
    for row in user.grants:
        try:
            role = Role(row.role)
        except ValueError:
            LOGGER.warning("user %s has a grant of unknown role %r", user.username, row.role)
            continue
        grants.add(Grant(role, row.collection, row.site))
    return frozenset(grants)


def principal_for(user: User, token: ApiToken | None = None) -> Principal:
    """The :class:`Principal` of ``user``, narrowed to ``token``'s scope if given.

    Raises
    ------
    Unauthorized
        The account is disabled (so a web session restored later is refused too).
    """
    if not user.is_active:
        raise Unauthorized(f"the account {user.username} is disabled")
    scope = None
    if token is not None:
        scope = TokenScope(
            role=Role(token.role),
            collection=token.collection,
            site=token.site,
            token_id=token.id,
            name=token.name,
        )
    return Principal(user.username, grants_of(user), token=scope, user_id=user.id)
