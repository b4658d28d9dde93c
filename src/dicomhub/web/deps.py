"""Dependency aliases reused in every route signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from dicomhub.context import IntakeContext, PublicContext
from dicomhub.core.auth import ANONYMOUS, Principal, principal_for, verify_token
from dicomhub.core.db import User, session_scope
from dicomhub.errors import Unauthorized
from dicomhub.publish.nbia import auth as nbia_auth


def get_context(request: Request) -> PublicContext | IntakeContext:
    context: PublicContext | IntakeContext = request.app.state.context
    return context


def get_public_context(request: Request) -> PublicContext:
    context = request.app.state.context
    assert isinstance(context, PublicContext)
    return context


def get_intake_context(request: Request) -> IntakeContext:
    context = request.app.state.context
    assert isinstance(context, IntakeContext)
    return context


def get_session(request: Request) -> Iterator[Session]:
    """One session per request on the app's own database."""
    context: PublicContext | IntakeContext = request.app.state.context
    with context.db.sessions() as session:
        yield session


ContextDep = Annotated[PublicContext | IntakeContext, Depends(get_context)]
PublicContextDep = Annotated[PublicContext, Depends(get_public_context)]
IntakeContextDep = Annotated[IntakeContext, Depends(get_intake_context)]
SessionDep = Annotated[Session, Depends(get_session)]


# -- who is asking -----------------------------------------------------------
#
# One dependency turns a request into a Principal for every public route (the
# pages, the JSON API, and the NBIA and DICOMweb routes): a bearer API token
# (checked with core.auth.verify_token) or an NBIA OAuth access token (issued by
# ``POST /nbia-api/oauth/token`` on the public side, so ``dicomhub download --token``
# and scripts work alike with either), else the user id in the signed session
# cookie (set by the login form), else the anonymous guest.  A presented but
# bad token is a 401, never a silent fall-back to guest.

SESSION_USER = "uid"


def session_data(request: Request) -> dict[str, Any]:
    """The signed session cookie's contents (empty if the app has no session middleware)."""
    if "session" not in request.scope:
        return {}
    data: dict[str, Any] = request.session
    return data


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if one was sent."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("use Authorization: Bearer <API token>")
    return value.strip()


def get_principal(request: Request) -> Principal:
    """The caller: token holder, logged-in user, or the anonymous guest."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    context: PublicContext | IntakeContext = request.app.state.context
    token = bearer_token(request)
    principal = ANONYMOUS
    if (
        token is not None
        and token.startswith(nbia_auth.MARK + ".")
        and isinstance(context, PublicContext)
    ):
        secret = context.settings.secret_key.get_secret_value()
        principal = nbia_auth.principal_of(context, nbia_auth.read(secret, token, "access"))
    elif token is not None:
        with session_scope(context.accounts.sessions) as session:
            principal = verify_token(session, token, context.settings.secret_key)
    else:
        user_id = session_data(request).get(SESSION_USER)
        if isinstance(user_id, int):
            with context.accounts.sessions() as session:
                user = session.get(User, user_id)
                if user is not None and user.is_active:
                    principal = principal_for(user)
                else:
                    session_data(request).pop(SESSION_USER, None)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
