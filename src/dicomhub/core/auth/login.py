"""Local password login."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.auth.audit import audit
from dicomhub.core.auth.passwords import (
    burn_verification_time,
    hash_password,
    needs_rehash,
    verify_password,
)
from dicomhub.core.auth.principal import Principal
from dicomhub.core.auth.users import principal_for
from dicomhub.core.db import User, utcnow
from dicomhub.errors import Unauthorized

LOGGER = logging.getLogger(__name__)

_INVALID = "invalid username or password"


def authenticate_password(
    session: Session, username: str, password: str, *, origin: str = ""
) -> Principal:
    """Check a local user's password and return their :class:`Principal`.

    Unknown users, directory (LDAP) accounts, disabled accounts and wrong
    passwords all fail with the same message, after the same hashing work, so
    the answer does not reveal which usernames exist.  A hash made with older
    parameters is replaced while the password is at hand.

    Raises
    ------
    Unauthorized
        The credentials do not open a local, active account.
    """
    user = session.scalar(select(User).where(User.username == username))
    if user is None or user.password_hash is None or user.source != "local":
        burn_verification_time(password)
        LOGGER.info("password login refused for %r: no local account", username)
        raise Unauthorized(_INVALID)
    if not verify_password(user.password_hash, password) or not user.is_active:
        LOGGER.info("password login refused for %r", username)
        raise Unauthorized(_INVALID)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.flush()
    audit(session, user.username, "auth.login", "user", user.username, origin, {"source": "local"})
    return principal_for(user)
