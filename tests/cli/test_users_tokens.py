"""`dicomhub users` and `dicomhub tokens` end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner, Result

from dicomhub.cli import tokens, users
from dicomhub.core.auth import authenticate_password, can, verify_token
from dicomhub.core.db import ApiToken, AuditEvent, make_engine, make_sessionmaker

KEY = "cli test instance secret key"
PASSWORD = "a good long password"

root = typer.Typer()
root.add_typer(users.app, name="users")
root.add_typer(tokens.app, name="tokens")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DICOMHUB_SECRET_KEY", KEY)
    # Wide enough that rich tables never shorten a cell (in any pytest worker).
    monkeypatch.setattr(users.console, "width", 250)


@pytest.fixture
def db(env: None, migrated_db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DICOMHUB_PUBLIC_DATABASE_URL", migrated_db_url)
    return migrated_db_url


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(root, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str, message: str, input: str | None = None) -> None:
    result = run(*args, input=input)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def test_users_happy_path(db: str) -> None:
    out = ok(
        "users", "add", "alice", "--email", "a@example.org", "--full-name", "Alice",
        "--password-stdin", "--role", "curator", "--collection", "LIDC",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert "created user alice as curator@LIDC" in out.stdout
    ok("users", "add", "bob", input=f"{PASSWORD}\n{PASSWORD}\n")  # prompted twice
    ok("users", "add", "svc", "--no-password")
    ok("users", "grant", "bob", "submitter", "--collection", "LIDC", "--site", "site-a")
    ok("users", "grant", "alice", "ADMIN")
    ok("users", "revoke-role", "alice", "admin")
    listing = ok("users", "list").stdout
    for text in ["alice", "bob", "svc", "curator@LIDC", "submitter@LIDC/site-a", "local"]:
        assert text in listing
    assert "admin" not in listing

    engine = make_engine(db)
    try:
        with make_sessionmaker(engine)() as session:
            principal = authenticate_password(session, "bob", PASSWORD)
            assert can(principal, "submit", collection="LIDC", site="site-a")
            actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
            actors = set(session.scalars(select(AuditEvent.actor)).all())
    finally:
        engine.dispose()
    assert actions[:6] == [
        "user.create", "role.grant", "user.create", "user.create", "role.grant", "role.grant",
    ]  # fmt: skip
    assert "role.revoke" in actions
    assert all(a.startswith("cli:") for a in actors - {"bob"})

    ok("users", "set-password", "bob", "--password-stdin", input="another long password\n")
    assert "disabled bob" in ok("users", "disable", "bob").stdout
    assert "no" in ok("users", "list").stdout
    ok("users", "enable", "bob")


def test_users_bad_input(db: str) -> None:
    ok("users", "add", "alice", "--no-password")
    fails("users", "add", "alice", "--no-password", message="user 'alice' already exists")
    fails("users", "add", "x y", "--no-password", message="invalid username")
    fails("users", "add", "bob", "--no-password", "--role", "wizard", message="unknown role")
    fails("users", "add", "bob", "--password-stdin", input="short\n", message="at least 12")
    fails("users", "add", "bob", "--password-stdin", input="", message="stdin held no password")
    fails("users", "add", "bob", "--no-password", "--collection", "L", message="give the role")
    # The grant fails after the user row was added: the whole add is rolled back.
    fails("users", "add", "bob", "--no-password", "-r", "curator", "-s", "s", message="collection")
    fails("users", "grant", "nobody", "curator", message="no user named 'nobody'")
    fails("users", "grant", "alice", "wizard", message="unknown role 'wizard'")
    fails("users", "grant", "alice", "curator", "--site", "s", message="give the collection")
    ok("users", "grant", "alice", "curator")
    fails("users", "grant", "alice", "curator", message="already holds curator")
    fails("users", "revoke-role", "alice", "manager", message="holds no manager grant")
    fails("users", "disable", "nobody", message="no user named")
    # Nothing half-done: the failed adds left no rows behind.
    listing = ok("users", "list").stdout
    assert "bob" not in listing


def test_tokens_happy_path(db: str) -> None:
    ok("users", "add", "alice", "--no-password", "--role", "curator", "-c", "LIDC")
    created = ok(
        "tokens", "create", "alice", "--role", "curator", "--collection", "LIDC",
        "--expires-days", "30", "--name", "ci",
    )  # fmt: skip
    plaintext = created.stdout.strip()
    assert plaintext.startswith("dh_")
    assert "not shown again" in created.stderr
    listing = ok("tokens", "list").stdout
    assert "alice" in listing
    assert "active" in listing
    assert plaintext not in listing
    assert plaintext.split("_")[1] in listing  # the prefix identifies it

    engine = make_engine(db)
    try:
        with make_sessionmaker(engine)() as session:
            principal = verify_token(session, plaintext, KEY)
            assert can(principal, "curate", collection="LIDC")
            (row,) = session.scalars(select(ApiToken)).all()
            assert row.token_hash != plaintext
            assert row.expires_at is not None
            token_id = row.id
    finally:
        engine.dispose()

    assert "alice" in ok("tokens", "list", "alice").stdout
    assert f"revoked token {token_id} of alice" in ok("tokens", "revoke", str(token_id)).stdout
    assert "revoked" in ok("tokens", "list").stdout


def test_tokens_bad_input(db: str) -> None:
    ok("users", "add", "alice", "--no-password", "--role", "curator", "-c", "LIDC")
    fails("tokens", "create", "nobody", "--role", "curator", message="no user named")
    fails("tokens", "create", "alice", "--role", "wizard", message="unknown role")
    fails(
        "tokens", "create", "alice", "--role", "manager", "-c", "LIDC",
        message="does not hold manager@LIDC",
    )  # fmt: skip
    fails("tokens", "create", "alice", "--role", "curator", message="does not hold curator")
    fails("tokens", "revoke", "42", message="no API token with id 42")
    fails("tokens", "list", "nobody", message="no user named")
    result = run("tokens", "create", "alice", "--role", "curator", "--expires-days", "0")
    assert result.exit_code == 2  # typer's own usage error


def test_missing_schema_says_to_upgrade(
    env: None, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DICOMHUB_PUBLIC_DATABASE_URL", db_url)
    fails("users", "list", message="run `dicomhub db upgrade` first")
    fails("users", "add", "alice", "--no-password", message="dicomhub db upgrade")
    fails("tokens", "list", message="dicomhub db upgrade")


def test_missing_secret_key(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DICOMHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DICOMHUB_PUBLIC_DATABASE_URL", migrated_db_url)
    monkeypatch.delenv("DICOMHUB_SECRET_KEY", raising=False)
    monkeypatch.delenv("DICOMHUB_DEMO", raising=False)
    fails("tokens", "create", "alice", "--role", "user", message="DICOMHUB_SECRET_KEY is not set")
