"""The web shell: both apps answer /healthz over real HTTP, errors map to JSON or HTML,
and the public side runs with no intake settings at all."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.fixtures.http import cli_process, free_port, serve_app, wait_for_http

from dicomhub.core.db.migrate import upgrade
from dicomhub.errors import ConfigurationError, NotFound
from dicomhub.settings import Settings, load_settings
from dicomhub.web.app import create_intake_app, create_public_app


@pytest.fixture
def settings(tmp_path: Path, migrated_db_url: str) -> Settings:
    """Public DB on the parametrized backend; intake DB on SQLite beside it."""
    built = load_settings(
        data_dir=tmp_path, secret_key="s" * 32, public_database_url=migrated_db_url
    )
    upgrade(built.intake_db)
    return built


def test_both_apps_answer_healthz(settings: Settings) -> None:
    with serve_app(create_public_app(settings.public())) as url:
        body = httpx.get(f"{url}/healthz").json()
        assert body["status"] == "ok"
        assert body["side"] == "public"
        assert body["checks"] == {"database": "ok", "store": "ok"}
    with serve_app(create_intake_app(settings.intake())) as url:
        body = httpx.get(f"{url}/healthz").json()
        assert body["status"] == "ok"
        assert body["side"] == "intake"


def test_home_pages_render(settings: Settings) -> None:
    with serve_app(create_public_app(settings.public())) as url:
        page = httpx.get(f"{url}/", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "No collection has been published yet" in page.text
        assert "htmx" in page.text
        assert httpx.get(f"{url}/static/css/dicomhub.css").status_code == 200


def test_unknown_route_is_json_for_apis_and_html_for_browsers(settings: Settings) -> None:
    with serve_app(create_public_app(settings.public())) as url:
        api = httpx.get(f"{url}/no/such/thing")
        assert api.status_code == 404
        assert api.json()["error"] == "not_found"
        page = httpx.get(f"{url}/no/such/thing", headers={"accept": "text/html"})
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>404</h1>" in page.text


def test_archive_errors_carry_their_status(settings: Settings) -> None:
    app = create_public_app(settings.public())

    @app.get("/boom")
    def boom() -> None:
        raise NotFound("no collection named 'X'")

    with serve_app(app) as url:
        answer = httpx.get(f"{url}/boom")
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "message": "no collection named 'X'"}


def test_unmigrated_database_fails_at_start_with_one_line(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key="s" * 32)
    from dicomhub.context import PublicContext

    with pytest.raises(ConfigurationError, match="run `dicomhub db upgrade`"):
        PublicContext.from_settings(settings.public())


def test_unwritable_store_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings = load_settings(
        data_dir=tmp_path, secret_key="s" * 32, public_store=(blocker / "store").as_uri()
    )
    upgrade(settings.public_db)
    from dicomhub.context import PublicContext

    with pytest.raises(ConfigurationError):
        PublicContext.from_settings(settings.public())


def test_public_process_runs_without_any_intake_setting(tmp_path: Path) -> None:
    """A real `dicomhub serve public` with intake pointed at nothing readable.

    The intake paths are set to locations that would fail if touched; the public
    process must start, answer, and never create them.
    """
    public_db = f"sqlite:///{tmp_path / 'pub' / 'public.sqlite3'}"
    upgrade(public_db)
    trap = tmp_path / "intake-must-not-exist"
    port = free_port()
    env = {
        "DICOMHUB_SECRET_KEY": "s" * 32,
        "DICOMHUB_DATA_DIR": str(tmp_path / "pub"),
        "DICOMHUB_PUBLIC_DATABASE_URL": public_db,
        "DICOMHUB_INTAKE_DATABASE_URL": f"sqlite:///{trap / 'intake.sqlite3'}",
        "DICOMHUB_INTAKE_STORE": (trap / "blobs").as_uri(),
        "DICOMHUB_PUBLIC_PORT": str(port),
    }
    with cli_process(["serve", "public"], env, tmp_path) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
    assert not trap.exists()
