"""The test services answer the way the rest of the suite expects them to."""

from __future__ import annotations

import uuid
import warnings

import boto3
import pytest
from botocore.config import Config
from sqlalchemy import create_engine, text

from tests.fixtures.services import CHROMIUM_ARGS, LdapServer, S3Endpoint

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1 names that pyasn1 0.6 deprecates.
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3

pytestmark = pytest.mark.services


def test_postgres_is_a_superuser_on_loopback(pg_admin_url: str) -> None:
    assert pg_admin_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = create_engine(pg_admin_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_setting('is_superuser')")).scalar_one()
            assert connection.execute(text("SHOW server_encoding")).scalar_one() == "UTF8"
            assert connection.execute(text("SHOW fsync")).scalar_one() == "off"
    finally:
        engine.dispose()


def test_db_url_backends(db_url: str, db_backend: str) -> None:
    assert db_url.startswith(db_backend)


def test_s3_round_trip(s3_endpoint: S3Endpoint) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint.endpoint_url,
        aws_access_key_id=s3_endpoint.access_key_id,
        aws_secret_access_key=s3_endpoint.secret_access_key,
        region_name=s3_endpoint.region,
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = f"smoke-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="a/b.dcm", Body=b"DICM")
    assert client.get_object(Bucket=bucket, Key="a/b.dcm")["Body"].read() == b"DICM"
    client.delete_object(Bucket=bucket, Key="a/b.dcm")
    client.delete_bucket(Bucket=bucket)


def test_ldap_users_bind_and_are_found(ldap_server: LdapServer) -> None:
    server = ldap3.Server(ldap_server.url, get_info=ldap3.NONE)
    for username, password in ldap_server.users.items():
        with ldap3.Connection(server, ldap_server.user_dn(username), password) as conn:
            assert conn.bind()
    refused = ldap3.Connection(server, ldap_server.user_dn("alice"), "wrong")
    try:
        assert not refused.bind()
    finally:
        refused.unbind()
    with ldap3.Connection(server, ldap_server.admin_dn, ldap_server.admin_password) as admin:
        assert admin.bind()
        admin.search(ldap_server.people_dn, "(uid=alice)", attributes=["cn", "mail"])
        (entry,) = admin.entries
        assert entry.cn.value == "Alice Example"
        assert entry.mail.value == "alice@example.org"
        admin.search(ldap_server.people_dn, "(uid=bob)", attributes=["userPassword"])
        assert admin.entries[0].userPassword.value.startswith("{SSHA}")


def test_ldap_passwords_hidden_from_anonymous(ldap_server: LdapServer) -> None:
    with ldap3.Connection(ldap3.Server(ldap_server.url, get_info=ldap3.NONE)) as anonymous:
        anonymous.search(ldap_server.people_dn, "(uid=alice)", attributes=["userPassword", "cn"])
        (entry,) = anonymous.entries
        assert entry.cn.value == "Alice Example"
        assert not entry.entry_attributes_as_dict.get("userPassword")


@pytest.mark.browser
def test_chromium_launches(chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_content("<h1 id=t>dicomhub</h1>")
            assert page.text_content("#t") == "dicomhub"
        finally:
            browser.close()
