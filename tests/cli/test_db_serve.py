"""`dicomhub db` and `dicomhub serve` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from tests.fixtures.http import cli_process, free_port, wait_for_http
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.core.db import make_engine, make_sessionmaker
from dicomhub.core.db.intake import DimsePeer
from dicomhub.core.db.migrate import current
from dicomhub.core.tls import ensure_self_signed
from dicomhub.settings import load_settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in list(os.environ):
        if key.startswith("DICOMHUB_") and not key.startswith("DICOMHUB_TEST"):
            monkeypatch.delenv(key)
    values = {"DICOMHUB_DATA_DIR": str(tmp_path / "var"), "DICOMHUB_SECRET_KEY": "k" * 32}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def test_db_upgrade_migrates_both_sides(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0
    assert before.output.count("not migrated") == 2
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    for name in ("intake", "public"):
        assert current(f"sqlite:///{tmp_path / 'var' / f'{name}.sqlite3'}") is not None
    only_public = runner.invoke(app, ["db", "current", "--side", "public"])
    assert "public:" in only_public.output
    assert "intake:" not in only_public.output


def test_db_upgrade_with_bad_url_is_one_line(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["db", "upgrade"], env={"DICOMHUB_PUBLIC_DATABASE_URL": "oracle://x/y"}
    )
    assert result.exit_code != 0
    assert "DICOMHUB_PUBLIC_DATABASE_URL" in str(result.exception)


def _register_peer(ae_title: str) -> None:
    engine = make_engine(load_settings().intake_db)
    with make_sessionmaker(engine)() as db, db.begin():
        db.add(DimsePeer(ae_title=ae_title, collection="DEMO", site="DEMO"))
    engine.dispose()


def test_serve_runs_public_intake_and_dimse(env: dict[str, str], tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    _register_peer("TESTSCU")  # the listener rejects calling AE titles it does not know
    cert, key = ensure_self_signed(tmp_path / "keys")
    ports = {name: free_port() for name in ("public", "intake", "dimse")}
    run_env = env | {
        "DICOMHUB_PUBLIC_PORT": str(ports["public"]),
        "DICOMHUB_INTAKE_PORT": str(ports["intake"]),
        "DICOMHUB_DIMSE_PORT": str(ports["dimse"]),
        "DICOMHUB_INTAKE_TLS_CERT": str(cert),
        "DICOMHUB_INTAKE_TLS_KEY": str(key),
    }
    with cli_process(["serve"], run_env, tmp_path) as proc:
        public = f"http://127.0.0.1:{ports['public']}/healthz"
        intake = f"https://127.0.0.1:{ports['intake']}/healthz"
        wait_for_http(public, proc=proc)
        wait_for_http(intake, proc=proc)
        assert httpx.get(public).json()["side"] == "public"
        answer = httpx.get(intake, verify=ssl.create_default_context(cafile=str(cert)))
        assert answer.json()["side"] == "intake"
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{ports['intake']}/healthz", timeout=2)
        echo = AE(ae_title="TESTSCU")
        echo.add_requested_context(Verification)
        assoc = echo.associate("127.0.0.1", ports["dimse"], ae_title="DICOMHUB")
        try:
            assert assoc.is_established
            status = assoc.send_c_echo()
        finally:  # a failed echo must not leave the association's socket open
            if assoc.is_established:
                assoc.release()
            else:
                assoc.abort()
        assert status.Status == 0x0000


def test_serve_refuses_an_unmigrated_instance(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    with cli_process(
        ["serve", "public"], env | {"DICOMHUB_PUBLIC_PORT": str(port)}, tmp_path
    ) as proc:
        assert proc.wait(timeout=60) == 1
        assert proc.stdout is not None
        output = proc.stdout.read().decode()
    assert "dicomhub db upgrade" in output
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
