"""One served public app per test session and backend, for the read-only API tests.

The NBIA and DICOMweb tests only read, so they share one site per backend (per
xdist worker) instead of building the catalogue for every module: the same
catalogue, accounts and token as ``tests.publish.conftest.public_site``.
A test that damages a blob restores it before it ends (:func:`hidden_blob`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dicomhub.context import PublicContext
from dicomhub.settings import load_settings
from dicomhub.web.app import create_public_app
from tests.fixtures.db import BACKENDS, PgDatabases
from tests.fixtures.http import serve_app
from tests.fixtures.public_data import build_public_catalogue
from tests.publish.conftest import PublicSite, _accounts


def _database(request: pytest.FixtureRequest, backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, folder / "public.db")
        yield f"sqlite:///{folder / 'public.db'}"
        return
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.create(template=request.getfixturevalue("pg_template"))
    try:
        yield databases.url_for(name)
    finally:
        databases.drop(name)


@pytest.fixture(scope="session", params=BACKENDS, ids=BACKENDS)
def api_site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    catalogue_blobs: Path,
) -> Iterator[PublicSite]:
    """The public app over the test catalogue, shared by every read-only API test."""
    folder = tmp_path_factory.mktemp("api-site")
    store = folder / "public-store"
    shutil.copytree(catalogue_blobs, store)
    for db_url in _database(request, str(request.param), folder):
        settings = load_settings(
            data_dir=folder,
            secret_key="s" * 32,
            public_database_url=db_url,
            public_store=store.as_uri(),
            cors_origins=["https://viewer.example.org"],
        ).public()
        context = PublicContext.from_settings(settings)
        try:
            catalogue = build_public_catalogue(db_url)
            token = _accounts(context)
            with serve_app(create_public_app(settings, context)) as url:
                yield PublicSite(url, db_url, context, catalogue, token)
        finally:
            context.close()


@contextmanager
def hidden_blob(site: PublicSite, key: str, replacement: bytes | None = None) -> Iterator[Path]:
    """Take a blob away (or swap its bytes) for the length of a ``with`` block."""
    root = Path(site.context.settings.store_url.removeprefix("file://"))
    path = root / key
    saved = path.read_bytes()
    try:
        if replacement is None:
            path.unlink()
        else:
            path.write_bytes(replacement)
        yield path
    finally:
        path.write_bytes(saved)
