"""API tokens: shown once, stored only as a keyed hash, narrowed to one role and scope.

A token reads ``dh_<prefix>_<secret>``.  The prefix (12 hex characters) is
stored in clear to find the row; the database keeps only
``HMAC-SHA256(instance secret, token)``, so a leaked database alone cannot be
used to test guesses offline, and a leaked token hash cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from dicomhub.core.auth.audit import audit
from dicomhub.core.auth.principal import Grant, Principal
from dicomhub.core.auth.roles import Role, parse_role
from dicomhub.core.auth.users import check_scope, get_user, grants_of, principal_for
from dicomhub.core.db import ApiToken, User, utcnow
from dicomhub.errors import BadRequest, Forbidden, NotFound, Unauthorized

LOGGER = logging.getLogger(__name__)

TOKEN_MARK = "dh"  # noqa: S105 - the public marker, not a secret
PREFIX_BYTES = 6  # 12 hex characters; hex so the prefix never contains the "_" separator
SECRET_BYTES = 32
_MAX_TOKEN_LENGTH = 256

SecretKey = str | bytes | SecretStr


def _key_bytes(secret_key: SecretKey) -> bytes:
    if isinstance(secret_key, SecretStr):
        secret_key = secret_key.get_secret_value()
    if isinstance(secret_key, str):
        secret_key = secret_key.encode()
    if not secret_key:
        raise BadRequest("the instance secret key is empty")
    return secret_key


def hash_token(plaintext: str, secret_key: SecretKey) -> str:
    """``HMAC-SHA256(secret_key, plaintext)`` as 64 hex characters (what the database keeps)."""
    return hmac.new(_key_bytes(secret_key), plaintext.encode(), hashlib.sha256).hexdigest()


def split_token(plaintext: str) -> tuple[str, str]:
    """``(prefix, secret)`` of a well-formed token; Unauthorized if it is not one."""
    parts = plaintext.strip().split("_", 2)
    if (
        len(plaintext) > _MAX_TOKEN_LENGTH
        or len(parts) != 3
        or parts[0] != TOKEN_MARK
        or len(parts[1]) != 2 * PREFIX_BYTES
        or not parts[2]
    ):
        raise Unauthorized("malformed API token (expected dh_<prefix>_<secret>)")
    return parts[1], parts[2]


def holds_role(user: User, role: Role, collection: str | None, site: str | None) -> bool:
    """Whether ``user`` holds ``role`` (or admin) over all of ``collection``/``site``."""
    wanted = Grant(role, collection, site)
    for grant in grants_of(user):
        if grant.role not in (role, Role.ADMIN):
            continue
        if grant.collection is None or (
            grant.collection == wanted.collection and grant.site in (None, wanted.site)
        ):
            return True
    return False


def create_token(
    session: Session,
    user: User,
    role: Role | str,
    collection: str | None = None,
    site: str | None = None,
    expires_in: timedelta | None = None,
    name: str = "",
    *,
    secret_key: SecretKey,
    actor: Principal | str,
    origin: str,
) -> tuple[ApiToken, str]:
    """Issue a token for ``user`` acting as ``role`` within ``collection``/``site``.

    Returns
    -------
    (ApiToken, str)
        The stored row and the plaintext token, which is never stored or shown again.

    Raises
    ------
    BadRequest
        Unknown role, impossible scope, non-positive lifetime, or too long a name.
    Forbidden
        The user does not hold that role over that scope, or is disabled.
    """
    role = parse_role(role)
    check_scope(role, collection, site)
    if len(name) > 128:
        raise BadRequest("a token name is at most 128 characters")
    if expires_in is not None and expires_in <= timedelta(0):
        raise BadRequest("a token's lifetime must be positive")
    if not user.is_active:
        raise Forbidden(f"{user.username} is disabled")
    if not holds_role(user, role, collection, site):
        scope = Grant(role, collection, site)
        raise Forbidden(f"{user.username} does not hold {scope}; grant the role first")
    prefix = secrets.token_hex(PREFIX_BYTES)
    plaintext = f"{TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=prefix,
        token_hash=hash_token(plaintext, secret_key),
        role=role.value,
        collection=collection,
        site=site,
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    session.add(token)
    session.flush()
    detail = {
        "token_id": token.id,
        "name": name,
        "role": role.value,
        "collection": collection,
        "site": site,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }
    audit(session, actor, "token.create", "user", user.username, origin, detail)
    return token, plaintext


def verify_token(
    session: Session, plaintext: str, secret_key: SecretKey, *, now: datetime | None = None
) -> Principal:
    """The :class:`Principal` a presented token stands for; ``last_used_at`` is updated.

    Raises
    ------
    Unauthorized
        Malformed, unknown or tampered token, wrong instance secret, revoked,
        expired, or the user is disabled.
    """
    prefix, _secret = split_token(plaintext)
    presented = hash_token(plaintext.strip(), secret_key)
    rows = session.scalars(
        select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.prefix == prefix)
    ).unique()
    match = None
    for row in rows:
        # Check every candidate, in constant time, so timing says nothing about the hash.
        if hmac.compare_digest(row.token_hash, presented):
            match = row
    if match is None:
        raise Unauthorized("invalid API token")
    now = now or utcnow()
    if match.revoked_at is not None:
        raise Unauthorized("this API token has been revoked")
    if match.expires_at is not None and match.expires_at <= now:
        raise Unauthorized("this API token has expired")
    if not match.user.is_active:
        raise Unauthorized(f"the account {match.user.username} is disabled")
    match.last_used_at = now
    session.flush()
    return principal_for(match.user, match)


def get_token(session: Session, token_id: int) -> ApiToken:
    """The token with id ``token_id``; NotFound if there is none."""
    token = session.get(ApiToken, token_id, options=[joinedload(ApiToken.user)])
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    return token


def revoke_token(
    session: Session, token_id: int, *, actor: Principal | str, origin: str
) -> ApiToken:
    """Revoke a token for good; revoking a revoked token changes nothing and is not an error."""
    token = get_token(session, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        detail = {"token_id": token.id, "name": token.name}
        audit(session, actor, "token.revoke", "user", token.user.username, origin, detail)
    return token


def list_tokens(session: Session, username: str | None = None) -> Sequence[ApiToken]:
    """Every token (of ``username`` if given), oldest first, with users loaded."""
    query = select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id)
    if username is not None:
        query = query.where(ApiToken.user_id == get_user(session, username).id)
    return session.scalars(query).all()


def token_state(token: ApiToken, now: datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``, for listings."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"
