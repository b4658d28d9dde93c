"""Directory login against a real slapd: success, refusals, DN injection, a down server."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.auth import Grant, Role, create_user, get_user, set_active
from dicomhub.core.auth.ldap import authenticate_ldap, user_dn
from dicomhub.core.db import AuditEvent, User
from dicomhub.errors import ConfigurationError, Unauthorized
from dicomhub.settings import LdapSettings
from tests.fixtures.services import LdapServer


@pytest.fixture
def ldap_settings(ldap_server: LdapServer) -> LdapSettings:
    template = f"uid={{username}},{ldap_server.people_dn}"
    return LdapSettings(url=ldap_server.url, user_dn_template=template, default_role="user")


def test_user_dn_escapes_the_username() -> None:
    template = "uid={username},ou=people,dc=dicomhub,dc=test"
    assert user_dn(template, "alice") == "uid=alice,ou=people,dc=dicomhub,dc=test"
    assert user_dn(template, "alice,ou=x") == r"uid=alice\,ou\=x,ou=people,dc=dicomhub,dc=test"
    assert user_dn(template, "*)(uid=*").startswith(r"uid=*)(uid\=*,")
    with pytest.raises(ConfigurationError, match="username"):
        user_dn("uid={user}", "alice")


def test_first_login_creates_the_user(
    db_session: Session, ldap_server: LdapServer, ldap_settings: LdapSettings
) -> None:
    password = ldap_server.users["alice"]
    principal = authenticate_ldap(db_session, ldap_settings, "alice", password, origin="test")
    db_session.commit()
    assert principal.username == "alice"
    assert principal.grants == {Grant(Role.USER)}
    user = get_user(db_session, "alice")
    assert user.source == "ldap"
    assert user.password_hash is None
    assert user.last_login_at is not None
    actions = db_session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["user.create", "role.grant", "auth.login"]
    # A second login reuses the row and keeps grants given since.
    user.grants.clear()
    db_session.flush()
    again = authenticate_ldap(db_session, ldap_settings, "alice", password)
    assert again.grants == frozenset()
    assert len(db_session.scalars(select(User)).all()) == 1


def test_default_role_comes_from_settings(
    db_session: Session, ldap_server: LdapServer, ldap_settings: LdapSettings
) -> None:
    settings = ldap_settings.model_copy(update={"default_role": "submitter"})
    principal = authenticate_ldap(db_session, settings, "bob", ldap_server.users["bob"])
    assert principal.grants == {Grant(Role.SUBMITTER)}


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong-password"),
        ("alice", "bob-secret"),
        ("alice", ""),  # an empty password would be an unauthenticated bind
        ("nobody", "alice-secret"),
        ("*)(uid=*", "alice-secret"),
        ("alice,ou=x", "alice-secret"),
        ("alice)(|(uid=*", "alice-secret"),
        ("", "alice-secret"),
    ],
)
def test_refused(
    db_session: Session, ldap_settings: LdapSettings, username: str, password: str
) -> None:
    with pytest.raises(Unauthorized, match="invalid username or password"):
        authenticate_ldap(db_session, ldap_settings, username, password)
    assert db_session.scalars(select(User)).all() == []


def test_injection_is_escaped_even_past_the_name_check(
    db_session: Session, ldap_server: LdapServer
) -> None:
    # A template that puts the name in a multi-valued spot still cannot be steered.
    settings = LdapSettings(
        url=ldap_server.url, user_dn_template=f"uid={{username}},{ldap_server.people_dn}"
    )
    dn = user_dn(settings.user_dn_template, "alice,ou=people")
    assert dn.count(",") == ldap_server.people_dn.count(",") + 2
    assert r"\," in dn


def test_local_account_of_the_same_name_is_not_taken_over(
    db_session: Session, ldap_server: LdapServer, ldap_settings: LdapSettings
) -> None:
    create_user(db_session, "alice", actor="root", origin="test", password="a local password!")
    with pytest.raises(Unauthorized, match="local account"):
        authenticate_ldap(db_session, ldap_settings, "alice", ldap_server.users["alice"])


def test_disabled_ldap_user_is_refused(
    db_session: Session, ldap_server: LdapServer, ldap_settings: LdapSettings
) -> None:
    authenticate_ldap(db_session, ldap_settings, "alice", ldap_server.users["alice"])
    set_active(db_session, get_user(db_session, "alice"), False, actor="root", origin="test")
    with pytest.raises(Unauthorized):
        authenticate_ldap(db_session, ldap_settings, "alice", ldap_server.users["alice"])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_down_server_fails_fast_and_clearly(db_session: Session) -> None:
    url = f"ldap://127.0.0.1:{_closed_port()}"
    settings = LdapSettings(url=url, user_dn_template="uid={username},dc=dicomhub,dc=test")
    started = time.monotonic()
    with pytest.raises(Unauthorized, match="unreachable"):
        authenticate_ldap(db_session, settings, "alice", "alice-secret", timeout=2)
    assert time.monotonic() - started < 5


def test_silent_server_times_out(db_session: Session) -> None:
    # A listener that accepts but never answers: the receive timeout must fire.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        settings = LdapSettings(
            url=f"ldap://127.0.0.1:{port}", user_dn_template="uid={username},dc=dicomhub,dc=test"
        )
        started = time.monotonic()
        with pytest.raises(Unauthorized, match="unreachable"):
            authenticate_ldap(db_session, settings, "alice", "alice-secret", timeout=1)
        assert time.monotonic() - started < 5
