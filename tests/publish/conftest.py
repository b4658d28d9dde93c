"""A running public app over a known catalogue, on SQLite and PostgreSQL.

``public_site`` migrates a public database (``migrated_db_url``), writes the
catalogue of :mod:`tests.fixtures.public_data` with real blobs, creates three
accounts and serves the public app on loopback:

* ``alice``: granted ``user`` on the limited collection (and an API token for it);
* ``bob``: an account with no grant (a stranger who is logged in);
* the anonymous guest.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dicomhub.context import PublicContext
from dicomhub.core.auth import create_token, create_user, grant_role, hash_password
from dicomhub.core.db import session_scope
from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.settings import load_settings
from dicomhub.web.app import create_public_app
from tests.fixtures.http import serve_app
from tests.fixtures.public_data import BREAST, PublicCatalogue, build_public_catalogue

PASSWORDS = {"alice": "alice-password-123", "bob": "bob-password-1234"}


@dataclass
class PublicSite:
    """A served public app and what was put in it."""

    url: str
    db_url: str
    context: PublicContext
    catalogue: PublicCatalogue
    alice_token: str

    def client(self, **kwargs: object) -> httpx.Client:
        """A client with its own cookie jar (one browser)."""
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def login(self, username: str) -> httpx.Client:
        client = self.client()
        answer = client.post(
            "/api/login", json={"username": username, "password": PASSWORDS[username]}
        )
        assert answer.status_code == 200, answer.text
        return client


@functools.cache
def _password_hash(username: str) -> str:
    # argon2 is slow on purpose; hash each test password once per process.
    return hash_password(PASSWORDS[username])


def _accounts(context: PublicContext) -> str:
    secret = context.settings.secret_key
    with session_scope(context.db.sessions) as session:
        alice = create_user(session, "alice", actor="test", origin="test")
        alice.password_hash = _password_hash("alice")
        grant_role(session, alice, "user", actor="test", origin="test", collection=BREAST)
        bob = create_user(session, "bob", actor="test", origin="test")
        bob.password_hash = _password_hash("bob")
        _row, token = create_token(
            session, alice, "user", BREAST, secret_key=secret, actor="test", origin="test"
        )
    return token


@pytest.fixture(scope="session")
def catalogue_blobs(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """The catalogue's files, put once per session through a real filesystem store."""
    scratch = tmp_path_factory.mktemp("catalogue")
    shutil.copyfile(sqlite_template, scratch / "scratch.db")
    build_public_catalogue(
        f"sqlite:///{scratch / 'scratch.db'}", FilesystemStore(scratch / "blobs")
    )
    return scratch / "blobs"


@pytest.fixture
def public_site(
    tmp_path: Path, migrated_db_url: str, catalogue_blobs: Path
) -> Iterator[PublicSite]:
    """The public app over the catalogue (rows written per test, blobs copied in)."""
    store = tmp_path / "public-store"
    shutil.copytree(catalogue_blobs, store)
    settings = load_settings(
        data_dir=tmp_path,
        secret_key="s" * 32,
        public_database_url=migrated_db_url,
        public_store=store.as_uri(),
    ).public()
    context = PublicContext.from_settings(settings)
    try:
        catalogue = build_public_catalogue(migrated_db_url)
        token = _accounts(context)
        with serve_app(create_public_app(settings, context)) as url:
            yield PublicSite(url, migrated_db_url, context, catalogue, token)
    finally:
        context.close()
