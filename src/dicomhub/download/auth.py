"""Credentials for limited collections: a fixed token, or an OAuth login that refreshes itself.

A long run outlives an access token (NBIA's and dicomhub's last two hours), so
an OAuth login keeps its refresh token and asks for a new access token shortly
before the old one expires, and again whenever the server answers 401; when
the refresh token is refused too it logs in again with the password, if it has
one.  Many worker threads share one :class:`OAuthLogin`; a lock makes sure
only one of them refreshes, and the others then use the new token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, Protocol

import httpx

from dicomhub.errors import BadRequest, Unauthorized

LOGGER = logging.getLogger(__name__)

TOKEN_PATH = "/nbia-api/oauth/token"  # noqa: S105 (a URL path, not a secret)
CLIENT_ID = "dicomhub-download"
#: Refresh this long before the server's stated expiry (or a tenth of a short lifetime).
MARGIN_SECONDS = 60.0


class TokenSource(Protocol):
    """Something that hands out a bearer token and may renew it."""

    def current(self) -> str: ...

    def renew(self, stale: str) -> bool: ...


class FixedToken:
    """A token given on the command line (a dicomhub API token or an NBIA access token)."""

    def __init__(self, token: str) -> None:
        self.token = token.strip()

    def current(self) -> str:
        return self.token

    def renew(self, stale: str) -> bool:
        return False


class OAuthLogin:
    """NBIA's ``/nbia-api/oauth/token``: password grant, then refresh-token grants."""

    def __init__(
        self, base_url: str, username: str, password: str | None, *, verify: bool | str = True
    ) -> None:
        self.url = base_url.rstrip("/") + TOKEN_PATH
        self.username = username
        self.password = password
        self.verify = verify
        self._lock = threading.Lock()
        self._access = ""
        self._refresh = ""
        self._expires = 0.0
        self.grants: list[str] = []  # what was asked, in order (for the summary and tests)

    def current(self) -> str:
        with self._lock:
            if not self._access or time.time() >= self._expires:
                self._renew_locked()
            return self._access

    def renew(self, stale: str) -> bool:
        with self._lock:
            if self._access != stale:
                return True  # another thread renewed it already
            self._renew_locked(force=True)
            return True

    def _renew_locked(self, *, force: bool = False) -> None:
        if self._refresh:
            try:
                self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh})
                return
            except Unauthorized:
                LOGGER.info("the refresh token was refused; logging in again")
        if self.password is None and self._refresh:
            raise Unauthorized("the login expired and no password is known; log in again")
        self._grant(
            {"grant_type": "password", "username": self.username, "password": self.password or ""}
        )

    def _grant(self, form: dict[str, str]) -> None:
        self.grants.append(form["grant_type"])
        form = {**form, "client_id": CLIENT_ID}
        try:
            answer = httpx.post(self.url, data=form, timeout=30, verify=self.verify)
        except httpx.HTTPError as exc:
            raise Unauthorized(f"cannot reach the token endpoint {self.url}: {exc}") from exc
        if answer.status_code in (400, 401, 403):
            raise Unauthorized(f"the server refused the login: {_oauth_error(answer)}")
        if answer.status_code != 200:
            raise Unauthorized(f"the token endpoint answered {answer.status_code}")
        body: dict[str, Any] = answer.json()
        lifetime = float(body.get("expires_in") or 300)
        self._access = str(body["access_token"])
        self._refresh = str(body.get("refresh_token") or "")
        self._expires = time.time() + lifetime - min(MARGIN_SECONDS, lifetime / 10)


def _oauth_error(answer: httpx.Response) -> str:
    try:
        body = answer.json()
        return str(body.get("error_description") or body.get("error") or answer.text[:200])
    except ValueError:
        return answer.text[:200]


class BearerAuth(httpx.Auth):
    """Sends the source's token; on a 401, renews it once and sends the request again."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.source.current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self.source.renew(token):
            request.headers["Authorization"] = f"Bearer {self.source.current()}"
            yield request


def read_credentials(path: Path) -> tuple[str, str]:
    """``userName=`` and ``passWord=`` from a file, as NBIA's retriever reads its ``-l`` file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot read the credential file {path}: {exc.strerror}") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    user, password = values.get("username"), values.get("password")
    if not user or password is None:
        raise BadRequest(f"{path} must hold userName=... and passWord=... lines")
    return user, password


__all__ = ["BearerAuth", "FixedToken", "OAuthLogin", "TokenSource", "read_credentials"]
