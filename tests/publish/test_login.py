"""Web login (``/api/login`` and the login form) with local accounts and a real slapd directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomhub.context import PublicContext
from dicomhub.core.auth import create_user
from dicomhub.core.db import session_scope
from dicomhub.settings import LdapSettings, load_settings
from dicomhub.web.app import create_public_app
from tests.fixtures.http import serve_app
from tests.fixtures.services import LdapServer
from tests.publish.conftest import PASSWORDS, _password_hash

LOCAL_BOB = PASSWORDS["bob"]


@pytest.fixture
def directory_site(tmp_path: Path, migrated_db_url: str, ldap_server: LdapServer) -> Iterator[str]:
    """A public app with a directory configured and a local ``bob`` (also in the directory)."""
    template = f"uid={{username}},{ldap_server.people_dn}"
    settings = load_settings(
        data_dir=tmp_path,
        secret_key="s" * 32,
        public_database_url=migrated_db_url,
        public_store=(tmp_path / "store").as_uri(),
        ldap=LdapSettings(url=ldap_server.url, user_dn_template=template),
    ).public()
    context = PublicContext.from_settings(settings)
    try:
        with session_scope(context.db.sessions) as session:
            bob = create_user(session, "bob", actor="test", origin="test")
            bob.password_hash = _password_hash("bob")
        with serve_app(create_public_app(settings, context)) as url:
            yield url
    finally:
        context.close()


def test_directory_and_local_logins(directory_site: str, ldap_server: LdapServer) -> None:
    with httpx.Client(base_url=directory_site) as browser:
        answer = browser.post(
            "/api/login", json={"username": "alice", "password": ldap_server.users["alice"]}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"username": "alice"}
        assert browser.get("/api/me").json()["username"] == "alice"
        assert browser.post("/api/logout").status_code == 200
        assert browser.get("/api/me").json()["anonymous"] is True
        form = browser.post(
            "/login", data={"username": "alice", "password": ldap_server.users["alice"]}
        )
        assert form.status_code == 303
        assert browser.get("/api/me").json()["username"] == "alice"

    refusals = [
        ("alice", "wrong-password"),
        ("alice", ""),
        ("nobody", "whatever-1234"),
        ("*)(uid=*", "x"),
        ("bob", ldap_server.users["bob"]),  # a local account is not taken over by the directory
    ]
    with httpx.Client(base_url=directory_site) as browser:
        for username, password in refusals:
            answer = browser.post("/api/login", json={"username": username, "password": password})
            assert answer.status_code in (400, 401), username
            assert answer.json()["message"], username
            assert browser.get("/api/me").json()["anonymous"] is True
        local = browser.post("/api/login", json={"username": "bob", "password": LOCAL_BOB})
        assert local.status_code == 200, local.text
        assert browser.get("/api/me").json()["username"] == "bob"
