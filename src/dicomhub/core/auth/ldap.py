"""Directory login: bind to LDAP as the user, then mirror them as a ``source='ldap'`` user.

The archive never stores a directory password.  The first successful login
creates the local row (with the configured default role, archive-wide);
later logins refresh the name and email from the directory.  The username is
checked and RDN-escaped before it goes into the DN template, and every
network step has a timeout, so a down directory fails fast and clearly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.auth.audit import audit
from dicomhub.core.auth.principal import Principal
from dicomhub.core.auth.roles import parse_role
from dicomhub.core.auth.users import USERNAME_RE, create_user, grant_role, principal_for
from dicomhub.core.db import User, utcnow
from dicomhub.errors import ArchiveError, ConfigurationError, Unauthorized
from dicomhub.settings import LdapSettings

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1 names that pyasn1 0.6 deprecates; harmless, silenced here.
    warnings.filterwarnings("ignore", r".* is deprecated\. Please use", DeprecationWarning)
    from ldap3 import BASE, NONE, SIMPLE, Connection, Server
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.dn import escape_rdn

LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
_INVALID = "invalid username or password"


def user_dn(template: str, username: str) -> str:
    """The DN to bind as: ``template`` with the RDN-escaped ``username`` put in."""
    try:
        return template.format(username=escape_rdn(username))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigurationError(
            f"LDAP user_dn_template must contain only the {{username}} field: {exc}"
        ) from exc


def authenticate_ldap(
    session: Session,
    settings: LdapSettings,
    username: str,
    password: str,
    *,
    origin: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> Principal:
    """Log ``username`` in by binding to the directory with ``password``.

    Parameters
    ----------
    session:
        The accounts database session (the user row is created or updated there).
    settings:
        The directory URL, the user DN template and the role given to new users.
    username, password:
        What the person typed; an empty password is refused before any bind,
        since LDAP treats it as an unauthenticated (always successful) bind.
    timeout:
        Seconds allowed for connecting and for each answer.

    Raises
    ------
    Unauthorized
        Wrong credentials, an unacceptable username, a disabled account, a
        local account of the same name, or an unreachable directory.
    """
    default_role = parse_role(settings.default_role)
    if not password or not USERNAME_RE.fullmatch(username):
        raise Unauthorized(_INVALID)
    attributes = _bind(settings, user_dn(settings.user_dn_template, username), password, timeout)
    canonical = _canonical_username(username, attributes)
    user = session.scalar(select(User).where(User.username == canonical))
    if user is not None and user.source != "ldap":
        raise Unauthorized(f"{canonical} is a {user.source} account; log in with its password")
    if user is not None and not user.is_active:
        raise Unauthorized(_INVALID)
    email, full_name = _first(attributes, "mail"), _first(attributes, "cn", "displayName")
    if user is None:
        user = create_user(
            session,
            canonical,
            actor=canonical,
            origin=origin,
            email=email,
            full_name=full_name,
            source="ldap",
        )
        grant_role(session, user, default_role, actor=canonical, origin=origin)
    else:
        user.email = email or user.email
        user.full_name = full_name or user.full_name
    user.last_login_at = utcnow()
    session.flush()
    audit(session, canonical, "auth.login", "user", canonical, origin, {"source": "ldap"})
    return principal_for(user)


def _bind(settings: LdapSettings, dn: str, password: str, timeout: float) -> dict[str, Any]:
    """Bind as ``dn`` and read the user's own entry; the entry's attributes on success."""
    try:
        server = Server(settings.url, connect_timeout=timeout, get_info=NONE)
        connection = Connection(
            server,
            user=dn,
            password=password,
            authentication=SIMPLE,
            # ldap3 packs this into SO_RCVTIMEO, which takes whole seconds.
            receive_timeout=max(1, math.ceil(timeout)),
            read_only=True,
            raise_exceptions=False,
        )
    except LDAPException as exc:
        raise ConfigurationError(f"bad LDAP settings ({settings.url}): {exc}") from exc
    try:
        if not connection.bind():
            LOGGER.info("LDAP bind refused for %s: %s", dn, connection.result.get("description"))
            raise Unauthorized(_INVALID)
        return _own_entry(connection, dn)
    except ArchiveError:
        raise
    except LDAPException as exc:
        LOGGER.warning("LDAP server %s unreachable: %s", settings.url, exc)
        raise Unauthorized(
            f"the directory server {settings.url} is unreachable; try again later"
        ) from exc
    finally:
        with contextlib.suppress(LDAPException, OSError):
            connection.unbind()
        # ldap3 leaves the socket of a failed connect open; close it ourselves.
        sock = getattr(connection, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _own_entry(connection: Connection, dn: str) -> dict[str, Any]:
    found = connection.search(
        dn, "(objectClass=*)", search_scope=BASE, attributes=["uid", "mail", "cn", "displayName"]
    )
    if not found or not connection.response:
        return {}
    attributes: dict[str, Any] = dict(connection.response[0].get("attributes", {}))
    return attributes


def _first(attributes: dict[str, Any], *names: str) -> str:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return str(value)
    return ""


def _canonical_username(username: str, attributes: dict[str, Any]) -> str:
    """The directory's spelling of the uid when it matches (LDAP compares case-blind)."""
    uid = _first(attributes, "uid")
    if uid and uid.casefold() == username.casefold() and USERNAME_RE.fullmatch(uid):
        return uid
    return username
