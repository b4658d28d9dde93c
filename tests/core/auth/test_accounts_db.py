"""Users, grants, password login and the audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.auth import (
    Grant,
    Role,
    authenticate_password,
    create_user,
    get_user,
    grant_role,
    list_users,
    principal_for,
    revoke_role,
    set_active,
    set_password,
)
from dicomhub.core.db import AuditEvent, User
from dicomhub.errors import BadRequest, Conflict, NotFound, Unauthorized

PASSWORD = "a long enough password"


def add(session: Session, username: str = "alice", **kwargs: object) -> User:
    return create_user(session, username, actor="root", origin="test", **kwargs)  # type: ignore[arg-type]


def events(session: Session) -> list[tuple[str, str, str]]:
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    return [(e.actor, e.action, e.target) for e in rows]


def test_create_user_hashes_password_and_audits(db_session: Session) -> None:
    user = add(db_session, email="a@example.org", full_name="Alice A", password=PASSWORD)
    db_session.commit()
    stored = db_session.scalars(select(User)).one()
    assert stored.username == "alice"
    assert stored.source == "local"
    assert stored.password_hash is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert events(db_session) == [("root", "user.create", "alice")]
    event = db_session.scalars(select(AuditEvent)).one()
    assert event.origin == "test"
    assert event.detail["has_password"] is True
    assert PASSWORD not in str(event.detail)
    assert user.id == stored.id


def test_duplicate_and_invalid_users(db_session: Session) -> None:
    add(db_session)
    with pytest.raises(Conflict, match="already exists"):
        add(db_session)
    for bad in ["", "has space", "-dash", "x" * 129, "uid=*)(", "a,b"]:
        with pytest.raises(BadRequest, match="invalid username"):
            add(db_session, bad)
    with pytest.raises(BadRequest, match="at least 12"):
        add(db_session, "bob", password="short")
    with pytest.raises(NotFound, match="no user named 'carol'"):
        get_user(db_session, "carol")


def test_grant_and_revoke(db_session: Session) -> None:
    user = add(db_session)
    grant_role(db_session, user, "curator", actor="root", origin="test", collection="LIDC")
    grant_role(db_session, user, Role.SUBMITTER, actor="root", origin="t", collection="L", site="s")
    grant_role(db_session, user, "admin", actor="root", origin="test")
    db_session.commit()
    listed = list_users(db_session)
    assert [u.username for u in listed] == ["alice"]
    assert {(g.role, g.collection, g.site) for g in listed[0].grants} == {
        ("curator", "LIDC", None),
        ("submitter", "L", "s"),
        ("admin", None, None),
    }
    with pytest.raises(Conflict, match="already holds admin"):
        grant_role(db_session, user, "admin", actor="root", origin="test")
    with pytest.raises(Conflict, match="curator@LIDC"):
        grant_role(db_session, user, "curator", actor="root", origin="test", collection="LIDC")
    revoke_role(db_session, user, "admin", actor="root", origin="test")
    with pytest.raises(NotFound, match="no admin grant"):
        revoke_role(db_session, user, "admin", actor="root", origin="test")
    db_session.commit()
    assert {g.role for g in get_user(db_session, "alice").grants} == {"curator", "submitter"}
    assert [a for _, a, _ in events(db_session)] == [
        "user.create",
        "role.grant",
        "role.grant",
        "role.grant",
        "role.revoke",
    ]


@pytest.mark.parametrize(
    ("role", "collection", "site", "message"),
    [
        ("wizard", None, None, "unknown role 'wizard'"),
        ("submitter", None, "s1", "give the collection too"),
        ("curator", "LIDC", "s1", "only submitter grants"),
        ("curator", "", None, "1 to 128"),
    ],
)
def test_bad_grants(
    db_session: Session, role: str, collection: str | None, site: str | None, message: str
) -> None:
    user = add(db_session)
    with pytest.raises(BadRequest, match=message):
        grant_role(db_session, user, role, actor="r", origin="t", collection=collection, site=site)


def test_password_login(db_session: Session) -> None:
    user = add(db_session, password=PASSWORD)
    grant_role(db_session, user, "curator", actor="root", origin="test", collection="LIDC")
    db_session.commit()
    principal = authenticate_password(db_session, "alice", PASSWORD, origin="10.0.0.1")
    assert principal.username == "alice"
    assert principal.grants == {Grant(Role.CURATOR, "LIDC")}
    assert principal.token is None
    assert not principal.anonymous
    assert get_user(db_session, "alice").last_login_at is not None
    assert events(db_session)[-1] == ("alice", "auth.login", "alice")


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "the wrong password"), ("nobody", PASSWORD), ("alice", ""), ("svc", PASSWORD)],
)
def test_password_login_refused(db_session: Session, username: str, password: str) -> None:
    add(db_session, password=PASSWORD)
    add(db_session, "svc")  # no password: token-only service account
    with pytest.raises(Unauthorized, match="invalid username or password"):
        authenticate_password(db_session, username, password)


def test_disabled_user_cannot_log_in(db_session: Session) -> None:
    user = add(db_session, password=PASSWORD)
    set_active(db_session, user, False, actor="root", origin="test")
    with pytest.raises(Unauthorized):
        authenticate_password(db_session, "alice", PASSWORD)
    set_active(db_session, user, True, actor="root", origin="test")
    authenticate_password(db_session, "alice", PASSWORD)


def test_login_rehashes_old_parameters(db_session: Session) -> None:
    user = add(db_session)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user.password_hash = weak
    db_session.commit()
    authenticate_password(db_session, "alice", PASSWORD)
    db_session.commit()
    rehashed = get_user(db_session, "alice").password_hash
    assert rehashed is not None
    assert rehashed != weak
    assert rehashed.startswith("$argon2id$")
    authenticate_password(db_session, "alice", PASSWORD)


def test_set_password(db_session: Session) -> None:
    user = add(db_session, password=PASSWORD)
    with pytest.raises(BadRequest, match="at least 12"):
        set_password(db_session, user, "short", actor="root", origin="test")
    set_password(db_session, user, "another long password", actor="root", origin="test")
    with pytest.raises(Unauthorized):
        authenticate_password(db_session, "alice", PASSWORD)
    authenticate_password(db_session, "alice", "another long password")
    ldap_user = add(db_session, "bob", source="ldap")
    with pytest.raises(BadRequest, match="ldap account"):
        set_password(db_session, ldap_user, PASSWORD, actor="root", origin="test")


def test_principal_for_refuses_a_disabled_account(db_session: Session) -> None:
    user = add(db_session)
    grant_role(db_session, user, "curator", actor="root", origin="test")
    assert principal_for(user).grants == {Grant(Role.CURATOR)}
    set_active(db_session, user, False, actor="root", origin="test")
    with pytest.raises(Unauthorized, match="disabled"):
        principal_for(user)
