"""API tokens: creation rules, verification, expiry, revocation, tampering, hashing at rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from dicomhub.core.auth import (
    Role,
    can,
    create_token,
    create_user,
    grant_role,
    hash_token,
    list_tokens,
    revoke_role,
    revoke_token,
    set_active,
    verify_token,
)
from dicomhub.core.auth.tokens import token_state
from dicomhub.core.db import AuditEvent, User, utcnow
from dicomhub.errors import BadRequest, Forbidden, NotFound, Unauthorized

KEY = "an instance secret key of some length"


@pytest.fixture
def alice(db_session: Session) -> User:
    user = create_user(db_session, "alice", actor="root", origin="test")
    grant_role(db_session, user, "curator", actor="root", origin="test", collection="LIDC")
    grant_role(db_session, user, "user", actor="root", origin="test")
    db_session.commit()
    return user


def issue(session: Session, user: User, role: str = "curator", **kwargs: object) -> str:
    kwargs.setdefault("collection", "LIDC")
    _row, plaintext = create_token(
        session,
        user,
        role,
        secret_key=KEY,
        actor="root",
        origin="test",
        **kwargs,  # type: ignore[arg-type]
    )
    session.commit()
    return plaintext


def test_create_and_verify(db_session: Session, alice: User) -> None:
    row, plaintext = create_token(
        db_session, alice, "curator", "LIDC", name="ci", secret_key=KEY, actor="root", origin="t"
    )
    db_session.commit()
    assert plaintext.startswith(f"dh_{row.prefix}_")
    assert len(plaintext.split("_", 2)[2]) >= 43  # 32 bytes, urlsafe base64
    assert row.last_used_at is None
    principal = verify_token(db_session, plaintext, KEY)
    db_session.commit()
    assert principal.username == "alice"
    assert principal.token is not None
    assert principal.token.token_id == row.id
    assert principal.token.role is Role.CURATOR
    assert principal.token.name == "ci"
    assert can(principal, "curate", collection="LIDC")
    assert not can(principal, "curate", collection="NLST")
    db_session.refresh(row)
    assert row.last_used_at is not None
    detail = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "token.create"))
    assert plaintext not in str(detail.one().detail)


def test_plaintext_never_stored(db_session: Session, db_engine: Engine, alice: User) -> None:
    plaintext = issue(db_session, alice)
    secret = plaintext.split("_", 2)[2]
    with db_engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_token")).all()
        audit = connection.execute(text("SELECT * FROM audit_event")).all()
    dumped = repr(rows) + repr(audit)
    assert secret not in dumped
    assert plaintext not in dumped
    assert rows[0].token_hash == hash_token(plaintext, KEY)
    assert len(rows[0].token_hash) == 64


def test_wrong_secret_key_or_tampered_token(db_session: Session, alice: User) -> None:
    plaintext = issue(db_session, alice)
    with pytest.raises(Unauthorized, match="invalid API token"):
        verify_token(db_session, plaintext, "another instance secret key")
    last = plaintext[-1]
    tampered = plaintext[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(Unauthorized, match="invalid API token"):
        verify_token(db_session, tampered, KEY)
    prefix = plaintext.split("_")[1]
    other_prefix = plaintext.replace(prefix, "0" * len(prefix), 1)
    with pytest.raises(Unauthorized, match="invalid API token"):
        verify_token(db_session, other_prefix, KEY)


@pytest.mark.parametrize(
    "garbage",
    ["", "dh_", "xx_0123456789ab_secret", "dh_short_secret", "dh_0123456789ab_", "x" * 999],
)
def test_malformed_tokens(db_session: Session, garbage: str) -> None:
    with pytest.raises(Unauthorized, match="malformed API token"):
        verify_token(db_session, garbage, KEY)


def test_expiry(db_session: Session, alice: User) -> None:
    plaintext = issue(db_session, alice, expires_in=timedelta(hours=1))
    verify_token(db_session, plaintext, KEY)
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(db_session, plaintext, KEY, now=utcnow() + timedelta(hours=2))
    (row,) = list_tokens(db_session, "alice")
    assert token_state(row) == "active"
    assert token_state(row, utcnow() + timedelta(hours=2)) == "expired"


def test_revoke(db_session: Session, alice: User) -> None:
    plaintext = issue(db_session, alice)
    (row,) = list_tokens(db_session)
    revoked = revoke_token(db_session, row.id, actor="root", origin="test")
    db_session.commit()
    first = revoked.revoked_at
    assert first is not None
    with pytest.raises(Unauthorized, match="revoked"):
        verify_token(db_session, plaintext, KEY)
    assert revoke_token(db_session, row.id, actor="root", origin="test").revoked_at == first
    assert token_state(row) == "revoked"
    with pytest.raises(NotFound, match="no API token with id 9999"):
        revoke_token(db_session, 9999, actor="root", origin="test")
    actions = db_session.scalars(select(AuditEvent.action)).all()
    assert actions.count("token.revoke") == 1


def test_refuses_roles_the_user_does_not_hold(db_session: Session, alice: User) -> None:
    with pytest.raises(Forbidden, match="does not hold manager@LIDC"):
        issue(db_session, alice, "manager")
    with pytest.raises(Forbidden, match="does not hold curator@NLST"):
        issue(db_session, alice, collection="NLST")
    with pytest.raises(Forbidden, match="does not hold curator"):
        issue(db_session, alice, collection=None)
    with pytest.raises(BadRequest, match="unknown role"):
        issue(db_session, alice, "wizard")
    with pytest.raises(BadRequest, match="positive"):
        issue(db_session, alice, expires_in=timedelta(0))
    # An archive-wide user grant does hold "user" anywhere.
    issue(db_session, alice, "user", collection=None)


def test_admin_may_issue_any_role(db_session: Session, alice: User) -> None:
    admin = create_user(db_session, "root", actor="root", origin="test")
    grant_role(db_session, admin, "admin", actor="root", origin="test")
    plaintext = issue(db_session, admin, "submitter", collection="LIDC", site="s1")
    principal = verify_token(db_session, plaintext, KEY)
    assert can(principal, "submit", collection="LIDC", site="s1")
    assert not can(principal, "submit", collection="LIDC", site="s2")
    assert not can(principal, "manage_users")


def test_revoking_the_grant_disarms_the_token(db_session: Session, alice: User) -> None:
    plaintext = issue(db_session, alice)
    revoke_role(db_session, alice, "curator", actor="root", origin="test", collection="LIDC")
    db_session.commit()
    principal = verify_token(db_session, plaintext, KEY)
    assert not can(principal, "curate", collection="LIDC")


def test_disabled_user_tokens_die(db_session: Session, alice: User) -> None:
    plaintext = issue(db_session, alice)
    assert set_active(db_session, alice, False, actor="root", origin="test") == 1
    db_session.commit()
    with pytest.raises(Unauthorized):
        verify_token(db_session, plaintext, KEY)
    with pytest.raises(Forbidden, match="disabled"):
        issue(db_session, alice)


def test_list_tokens(db_session: Session, alice: User) -> None:
    issue(db_session, alice, name="one")
    issue(db_session, alice, "user", collection=None, name="two")
    assert [t.name for t in list_tokens(db_session, "alice")] == ["one", "two"]
    with pytest.raises(NotFound):
        list_tokens(db_session, "nobody")
