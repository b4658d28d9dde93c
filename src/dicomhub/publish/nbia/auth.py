"""Who is asking on the NBIA and DICOMweb routes, and NBIA's OAuth token endpoint.

NBIA clients authenticate in three ways, and all three must keep working:

* nothing, or ``Authorization: Bearer undefined`` (what NBIA's own web client
  sends before login): the anonymous guest, as NBIA's ``nbia_guest``;
* a token from ``POST /nbia-api/oauth/token`` (password or refresh grant, the
  form the Go TCIA Data Retriever and older tcia_utils send);
* the archive's own API tokens (``dh_…``) and the session cookie, exactly as on
  every other public route (delegated to the app's principal dependency).

OAuth tokens are stateless: ``nbia.<payload>.<signature>``, an HMAC-SHA256 over
the payload with a key derived from the instance secret.  Each request rebuilds
the principal from the accounts database, so a disabled account or a withdrawn
grant takes effect at once, even for a token already issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from dicomhub.context import PublicContext
from dicomhub.core.auth import ANONYMOUS, Principal, authenticate_password, principal_for
from dicomhub.core.db import User, session_scope
from dicomhub.errors import ArchiveError, BadRequest, Unauthorized
from dicomhub.publish.access import Visibility, visibility
from dicomhub.publish.http import current_principal, public_context

LOGGER = logging.getLogger(__name__)

MARK = "nbia"
GUEST = "nbia_guest"
ACCESS_SECONDS = 2 * 3600
REFRESH_SECONDS = 24 * 3600
_ANONYMOUS_VALUES = frozenset({"undefined", "null"})
_MAX_TOKEN = 1024


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"dicomhub nbia oauth token", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    """What a token says: whose it is (None for the guest), its kind and its expiry."""

    user_id: int | None
    kind: str
    expires: int
    session: str


def sign(secret: str, claims: Claims) -> str:
    """The token text for ``claims``."""
    payload = json.dumps(
        {"sub": claims.user_id, "typ": claims.kind, "exp": claims.expires, "sid": claims.session},
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return f"{MARK}.{_b64(payload)}.{_b64(mac)}"


def read(secret: str, token: str, kind: str, *, now: float | None = None) -> Claims:
    """The claims of a genuine, unexpired token of ``kind``; Unauthorized otherwise."""
    parts = token.split(".")
    if len(token) > _MAX_TOKEN or len(parts) != 3 or parts[0] != MARK:
        raise Unauthorized("malformed token")
    try:
        payload, mac = _unb64(parts[1]), _unb64(parts[2])
    except (ValueError, TypeError):
        raise Unauthorized("malformed token") from None
    expected = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise Unauthorized("invalid token")
    try:
        data = json.loads(payload)
        claims = Claims(data["sub"], str(data["typ"]), int(data["exp"]), str(data["sid"]))
    except (ValueError, KeyError, TypeError):
        raise Unauthorized("malformed token") from None
    if claims.kind != kind:
        raise Unauthorized(f"not an {kind} token")
    if claims.expires <= (time.time() if now is None else now):
        raise Unauthorized("the token has expired; ask /nbia-api/oauth/token for a new one")
    return claims


def _secret(context: PublicContext) -> str:
    return context.settings.secret_key.get_secret_value()


def principal_of(context: PublicContext, claims: Claims) -> Principal:
    """The principal a token's claims stand for, read afresh from the accounts database."""
    if claims.user_id is None:
        return ANONYMOUS
    with context.accounts.sessions() as session:
        user = session.get(User, claims.user_id)
        if user is None:
            raise Unauthorized("the account of this token no longer exists")
        return principal_for(user)


def _credential(request: Request) -> str | None:
    """The bearer value sent, None if none (or NBIA's ``Bearer undefined``)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value.lower() in _ANONYMOUS_VALUES:
        return None
    return header


def nbia_principal(request: Request) -> Principal:
    """The caller of an NBIA or DICOMweb route (see the module docstring)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = _credential(request)
    if header is None:
        principal = ANONYMOUS
    else:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value.startswith(MARK + "."):
            context = public_context(request)
            principal = principal_of(context, read(_secret(context), value, "access"))
        else:
            resolver = request.app.dependency_overrides.get(current_principal, current_principal)
            resolved = resolver(request)
            assert isinstance(resolved, Principal)
            principal = resolved
    request.state.principal = principal
    return principal


def require_credential(request: Request) -> None:
    """NBIA v2 routes need a bearer token (the guest's will do); 401 without one."""
    if _credential(request) is None:
        raise Unauthorized("this route needs a bearer token from /nbia-api/oauth/token")


def nbia_visibility(principal: Annotated[Principal, Depends(nbia_principal)]) -> Visibility:
    return visibility(principal)


NbiaPrincipalDep = Annotated[Principal, Depends(nbia_principal)]
NbiaVisibilityDep = Annotated[Visibility, Depends(nbia_visibility)]


# -- the token endpoint -------------------------------------------------------------

oauth_router = APIRouter(tags=["nbia"])

_FORM_FIELDS = frozenset(
    {"grant_type", "username", "password", "client_id", "client_secret", "refresh_token", "scope"}
)


def issue(secret: str, user_id: int | None, *, now: float | None = None) -> dict[str, Any]:
    """A Keycloak-shaped token response for ``user_id`` (None: the guest)."""
    issued = int(time.time() if now is None else now)
    session = secrets.token_hex(16)
    access = sign(secret, Claims(user_id, "access", issued + ACCESS_SECONDS, session))
    refresh = sign(secret, Claims(user_id, "refresh", issued + REFRESH_SECONDS, session))
    ident = sign(secret, Claims(user_id, "id", issued + ACCESS_SECONDS, session))
    return {
        "access_token": access,
        "expires_in": ACCESS_SECONDS,
        "refresh_expires_in": REFRESH_SECONDS,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "id_token": ident,
        "not-before-policy": 0,
        "session_state": session,
        "scope": "openid",
    }


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@oauth_router.post("/nbia-api/oauth/token")
async def oauth_token(request: Request) -> JSONResponse:
    """Password and refresh-token grants, answered as Keycloak answers them."""
    context = public_context(request)
    form = await request.form()
    fields = {name: str(value) for name, value in form.multi_items() if isinstance(value, str)}
    unknown = sorted(set(form.keys()) - _FORM_FIELDS)
    if unknown:
        return _oauth_error(400, "invalid_request", f"unknown form field {unknown[0][:40]!r}")
    grant = fields.get("grant_type", "").lower()
    try:
        if grant == "password":
            user_id = _password_grant(request, context, fields)
        elif grant == "refresh_token":
            claims = read(_secret(context), fields.get("refresh_token", ""), "refresh")
            user_id = claims.user_id
            principal_of(context, claims)  # the account must still be usable
        else:
            return _oauth_error(400, "unsupported_grant_type", "use password or refresh_token")
    except Unauthorized as exc:
        return _oauth_error(401, "invalid_grant", exc.message)
    except BadRequest as exc:
        return _oauth_error(400, "invalid_request", exc.message)
    except ArchiveError:
        raise
    return JSONResponse(issue(_secret(context), user_id), headers={"Cache-Control": "no-store"})


def _password_grant(request: Request, context: PublicContext, fields: dict[str, str]) -> int | None:
    username = fields.get("username", "")
    if not username:
        raise BadRequest("username is required")
    if username == GUEST:
        return None  # NBIA accepts the guest with any password
    password = fields.get("password", "")
    if not password:
        raise Unauthorized("invalid username or password")
    origin = request.client.host if request.client else ""
    with session_scope(context.accounts.sessions) as session:
        principal = authenticate_password(session, username, password, origin=origin)
    return principal.user_id
