"""What the public routes need from a request: context, session, caller, basket owner.

A stage may not import :mod:`dicomhub.web`, so the caller is taken through the
placeholder dependency :func:`current_principal`, which the web app points at
:func:`dicomhub.web.deps.get_principal` (``app.dependency_overrides``).  An app
that forgets to do so fails closed: every route answers 500, none runs as
someone it should not.

Guest baskets hang on a random key kept in the signed session cookie; a
logged-in user's on their user id.  State-changing requests that ride on the
cookie must come from this site (``Origin``/``Referer``), on top of the
cookie's ``SameSite=Lax``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from dicomhub.context import PublicContext
from dicomhub.core.auth import Principal
from dicomhub.errors import ConfigurationError, Forbidden
from dicomhub.publish.access import Visibility, authenticate, visibility
from dicomhub.publish.basket import Owner, merge_into
from dicomhub.settings import LdapSettings

SESSION_USER = "uid"
SESSION_BASKET = "basket"


def session_signing_key(secret: str) -> str:
    """The session cookie's signing key, derived from (never equal to) the instance secret."""
    return hmac.new(secret.encode(), b"dicomhub public session cookie", hashlib.sha256).hexdigest()


def current_principal(request: Request) -> Principal:
    """Placeholder for the web app's principal dependency (see the module docstring)."""
    raise ConfigurationError("the public app did not provide the current principal")


def public_context(request: Request) -> PublicContext:
    context = request.app.state.context
    if not isinstance(context, PublicContext):
        raise ConfigurationError("the public routes need the public context")
    return context


def db_session(request: Request) -> Iterator[Session]:
    """One session per request on the public database (routes commit what they change)."""
    with public_context(request).db.sessions() as session:
        yield session


def caller_visibility(principal: Annotated[Principal, Depends(current_principal)]) -> Visibility:
    return visibility(principal)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
ContextDep = Annotated[PublicContext, Depends(public_context)]
DbDep = Annotated[Session, Depends(db_session)]
VisibilityDep = Annotated[Visibility, Depends(caller_visibility)]


def _cookie(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        return {}
    data: dict[str, Any] = request.session
    return data


def basket_owner(request: Request, principal: Principal, *, create: bool) -> Owner | None:
    """The basket owner of this request; a guest key is minted only when ``create``."""
    if not principal.anonymous and principal.user_id is not None:
        return Owner(user_id=principal.user_id)
    cookie = _cookie(request)
    key = cookie.get(SESSION_BASKET)
    if not isinstance(key, str) or not 16 <= len(key) <= 64:
        if not create:
            return None
        if "session" not in request.scope:
            raise ConfigurationError("guest baskets need the session middleware")
        key = secrets.token_urlsafe(24)
        cookie[SESSION_BASKET] = key
    return Owner(session_key=key)


def require_same_origin(request: Request) -> None:
    """Refuse a cookie-authenticated state change sent from another site (CSRF)."""
    if request.headers.get("authorization"):
        return  # a bearer token is not sent by browsers on their own
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return  # non-browser clients; SameSite=Lax already keeps cross-site cookies away
    parts = urlsplit(source)
    if parts.netloc != request.headers.get("host", ""):
        raise Forbidden("cross-site request refused")


def sign_in(
    request: Request, session: Session, ldap: LdapSettings | None, username: str, password: str
) -> Principal:
    """Check the credentials (local or directory), put the user in the session cookie.

    A guest basket started before signing in is merged into the user's, so
    nothing picked while anonymous is lost.
    """
    origin = request.client.host if request.client else ""
    principal = authenticate(session, ldap, username, password, origin)
    cookie = _cookie(request)
    guest_key = cookie.get(SESSION_BASKET)
    if isinstance(guest_key, str) and principal.user_id is not None:
        merge_into(session, Owner(session_key=guest_key), Owner(user_id=principal.user_id))
    cookie.clear()
    cookie[SESSION_USER] = principal.user_id
    session.commit()
    return principal


def log_out(request: Request) -> None:
    """Forget the user (and the guest basket key) in this browser."""
    _cookie(request).clear()
