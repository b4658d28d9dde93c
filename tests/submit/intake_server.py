"""dicomhub's own intake app over real HTTPS on loopback, with a kit made by `dicomhub kits`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from dicomhub.cli import kits
from dicomhub.context import IntakeContext
from dicomhub.core.auth import create_token, create_user, grant_role
from dicomhub.core.db import Instance, QuarantineItem
from dicomhub.settings import load_settings
from dicomhub.web.app import create_intake_app
from tests.fixtures.http import serve_app

SECRET = "submit e2e archive secret key"
ROOT = "1.2.826.0.1.3680043.10.998"
COLLECTION, SITE = "LUNG1", "S1"


@dataclass
class Intake:
    url: str
    context: IntakeContext
    kit: Path
    ca_pem: Path

    def instances(self) -> dict[str, str]:
        """SOP Instance UID -> sha256 of what the intake stored."""
        with self.context.db.sessions() as db:
            return {i.sop_instance_uid: i.sha256 for i in db.scalars(select(Instance))}

    def quarantined(self) -> list[tuple[str, str]]:
        """(reason, detail) of every instance the intake quarantined."""
        with self.context.db.sessions() as db:
            return [(q.reason_code, q.detail) for q in db.scalars(select(QuarantineItem))]


def submitter_token(context: IntakeContext) -> str:
    with context.accounts.sessions() as db, db.begin():
        user = create_user(db, "site-s1", actor="admin", origin="test")
        grant_role(db, user, "submitter", actor="admin", origin="test",
                   collection=COLLECTION, site=SITE)  # fmt: skip
        _row, plaintext = create_token(
            db, user, "submitter", COLLECTION, SITE, None,
            secret_key=context.settings.secret_key, actor="admin", origin="test",
        )  # fmt: skip
    return plaintext


def make_kit(token: str, url: str, ca_pem: Path, out: Path) -> None:
    root = typer.Typer()
    root.add_typer(kits.app, name="kits")
    result = CliRunner().invoke(root, [
        "kits", "create", "--collection", COLLECTION, "--site", SITE, "--token", token,
        "--intake-url", url, "--ca-bundle", str(ca_pem), "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output


@pytest.fixture
def intake(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Intake]:
    env = {
        "DICOMHUB_DATA_DIR": str(tmp_path / "var"),
        "DICOMHUB_INTAKE_DATABASE_URL": migrated_db_url,
        "DICOMHUB_PUBLIC_DATABASE_URL": migrated_db_url,
        "DICOMHUB_SECRET_KEY": SECRET,
        "DICOMHUB_UID_ROOT": ROOT,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings().intake()
    context = IntakeContext.from_settings(settings)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    app = create_intake_app(settings, context)
    try:
        with serve_app(app, ssl_certfile=str(cert_pem), ssl_keyfile=str(key_pem)) as url:
            kit = tmp_path / "kit.json"
            make_kit(submitter_token(context), url, ca_pem, kit)
            yield Intake(url, context, kit, ca_pem)
    finally:
        context.close()
