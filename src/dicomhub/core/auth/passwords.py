"""Local passwords: argon2id hashes, a minimal policy, and transparent rehashing.

argon2-cffi's :class:`~argon2.PasswordHasher` defaults to argon2id with
parameters that follow RFC 9106; its ``verify`` compares in constant time.
When the parameters change between releases, :func:`needs_rehash` tells the
login path to store a fresh hash the next time the password is known.
"""

from __future__ import annotations

import functools
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dicomhub.errors import BadRequest

LOGGER = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
#: Hashing cost grows with length; refuse absurd inputs before they reach argon2.
MAX_PASSWORD_LENGTH = 1024

_HASHER = PasswordHasher()


def check_password_policy(password: str, *, username: str | None = None) -> None:
    """Refuse a password the archive will not store, saying why in one line.

    Raises
    ------
    BadRequest
        Shorter than :data:`MIN_PASSWORD_LENGTH`, longer than
        :data:`MAX_PASSWORD_LENGTH`, blank, or equal to the username.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(
            f"password too short: use at least {MIN_PASSWORD_LENGTH} characters "
            f"(got {len(password)})"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise BadRequest("password must not be only whitespace")
    if username is not None and password.casefold() == username.casefold():
        raise BadRequest("password must not be the username")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) to store for ``password``."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant-time; False on a bad hash)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        LOGGER.warning("stored password hash could not be checked (corrupt or unknown format)")
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.cache
def _dummy_hash() -> str:
    # A real hash of a fixed string, made on first use (not at import).
    return hash_password("dicomhub-timing-equaliser-not-a-password")


def burn_verification_time(password: str) -> None:
    """Spend one verification's worth of time, so unknown users are not revealed by timing."""
    verify_password(_dummy_hash(), password)
