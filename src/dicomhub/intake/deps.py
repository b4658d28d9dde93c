"""What every intake route needs: the app's one intake service and the caller's principal.

The intake app accepts API tokens only (``Authorization: Bearer``); it has no
login form, so no session cookie is ever trusted here.
"""

from __future__ import annotations

from fastapi import Request

from dicomhub.context import IntakeContext
from dicomhub.core.auth import Principal, verify_token
from dicomhub.errors import Unauthorized
from dicomhub.intake.service import IntakeService


def context_of(request: Request) -> IntakeContext:
    """The intake context the app's lifespan built."""
    context: IntakeContext = request.app.state.context
    return context


def service_of(request: Request) -> IntakeService:
    """One service per app, built on first use."""
    service: IntakeService | None = getattr(request.app.state, "intake_service", None)
    if service is None:
        service = IntakeService(context_of(request))
        request.app.state.intake_service = service
    return service


def principal_of(request: Request) -> Principal:
    """The bearer token's principal (verified against the accounts database)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send a bearer token")
    context = context_of(request)
    with context.accounts.sessions() as db, db.begin():
        return verify_token(db, token.strip(), context.settings.secret_key)
