"""Settings: one object, built explicitly, with one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhub.errors import ConfigurationError
from dicomhub.settings import IntakeSettings, PublicSettings, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("DICOMHUB_") and not key.startswith("DICOMHUB_TEST"):
            monkeypatch.delenv(key)


def test_data_dir_moves_every_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "inst"))
    settings = load_settings()
    root = (tmp_path / "inst").resolve()
    assert settings.intake_db == f"sqlite:///{root / 'intake.sqlite3'}"
    assert settings.public_db == f"sqlite:///{root / 'public.sqlite3'}"
    assert settings.intake_store_url == (root / "blobs" / "intake").as_uri()
    assert settings.public_store_url == (root / "blobs" / "public").as_uri()


def test_each_url_can_be_set_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMHUB_PUBLIC_DATABASE_URL", "postgresql://u@h/pub")
    monkeypatch.setenv("DICOMHUB_INTAKE_STORE", "s3://bucket/intake")
    settings = load_settings()
    assert settings.public_db == "postgresql://u@h/pub"
    assert settings.intake_store_url == "s3://bucket/intake"
    assert settings.intake_db.startswith("sqlite:///")


def test_unknown_database_scheme_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMHUB_INTAKE_DATABASE_URL", "mysql://x/y")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "DICOMHUB_INTAKE_DATABASE_URL" in info.value.message
    assert "mysql" in info.value.message
    assert "\n" not in info.value.message


def test_unknown_store_scheme_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="DICOMHUB_PUBLIC_STORE"):
        load_settings(public_store="ftp://host/x")


def test_bad_ae_title_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AE title"):
        load_settings(dimse_ae_title="THIS-TITLE-IS-FAR-TOO-LONG")


def test_secret_required_outside_demo_mode(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="DICOMHUB_SECRET_KEY is not set"):
        settings.public()


def test_short_secret_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        load_settings(data_dir=tmp_path, secret_key="short").public()


def test_demo_mode_generates_and_keeps_a_private_secret(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path, demo=True).public().secret_key.get_secret_value()
    again = load_settings(data_dir=tmp_path, demo=True).intake().secret_key.get_secret_value()
    assert first == again
    assert len(first) >= 32
    secret_file = tmp_path / "keys" / "secret_key"
    assert secret_file.stat().st_mode & 0o777 == 0o600


def test_public_view_has_no_intake_fields(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key="x" * 32)
    public = settings.public()
    assert isinstance(public, PublicSettings)
    dumped = public.model_dump_json()
    assert settings.intake_db.split("///")[1] not in dumped
    assert settings.intake_store_url not in dumped
    assert not any("intake" in name for name in PublicSettings.model_fields)
    assert isinstance(settings.intake(), IntakeSettings)
    assert settings.intake().accounts_database_url == settings.public_db


def test_settings_are_not_built_at_import() -> None:
    import dicomhub.settings as module

    assert not any(isinstance(value, Settings) for value in vars(module).values())


def test_every_setting_is_documented() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []
