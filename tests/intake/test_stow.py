"""STOW-RS against the intake app served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from dicomhub.context import IntakeContext
from dicomhub.core.auth import create_token, create_user, grant_role
from dicomhub.core.db import Instance
from dicomhub.web.app import create_intake_app
from tests.core.dicom.build import STUDY, instance_bytes
from tests.fixtures.http import serve_app
from tests.intake.conftest import COLLECTION, SITE

BOUNDARY = "dicomhub-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def _token(context: IntakeContext, site: str = SITE, expires: timedelta | None = None) -> str:
    with context.accounts.sessions() as db, db.begin():
        user = create_user(db, f"kit-{site.lower()}", actor="admin", origin="test")
        grant_role(db, user, "submitter", actor="admin", origin="test",
                   collection=COLLECTION, site=site)  # fmt: skip
        _row, plaintext = create_token(
            db, user, "submitter", COLLECTION, site, expires,
            secret_key=context.settings.secret_key, actor="admin", origin="test",
        )  # fmt: skip
    return plaintext


def _body(*parts: bytes, boundary: str = BOUNDARY) -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.fixture
def stow_url(intake_context: IntakeContext) -> Iterator[str]:
    app: FastAPI = create_intake_app(intake_context.settings, intake_context)
    with serve_app(app) as url:
        yield url


def _post(url: str, token: str, body: bytes, content_type: str = CONTENT_TYPE) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    return httpx.post(f"{url}/dicomweb/studies", content=body, headers=headers, timeout=60)


def test_stow_stores_and_answers_per_ps3_18(stow_url: str, intake_context: IntakeContext) -> None:
    token = _token(intake_context)
    parts = [instance_bytes(sop_uid=f"1.2.3.20.{i}", instance_number=i) for i in range(1, 6)]
    response = _post(stow_url, token, _body(*parts))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    referenced = response.json()["00081199"]["Value"]
    assert [r["00081155"]["Value"][0] for r in referenced] == [f"1.2.3.20.{i}" for i in range(1, 6)]
    with intake_context.db.sessions() as db:
        assert len(list(db.scalars(select(Instance)))) == 5
    mixed = _post(stow_url, token, _body(instance_bytes(), b"garbage" * 30, b""))
    assert mixed.status_code == 202
    failed = mixed.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000, 0xC000]
    none = _post(stow_url, token, _body(instance_bytes(Modality="ct")))
    assert none.status_code == 409


def test_stow_refuses_bad_requests(stow_url: str, intake_context: IntakeContext) -> None:
    token = _token(intake_context)
    body = _body(instance_bytes())
    assert _post(stow_url, "dh_nope_nope", body).status_code == 401
    assert _post(stow_url, token, body, "application/dicom").status_code == 415
    no_type = f"multipart/related; boundary={BOUNDARY}"
    assert _post(stow_url, token, body, no_type).status_code == 415
    wrong = _post(stow_url, token, _body(instance_bytes(), boundary="other"))
    assert wrong.status_code == 400
    other_site = _post(stow_url, token, _body(instance_bytes(ClinicalTrialSiteID="SITE-B")))
    assert other_site.status_code == 409
    assert other_site.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0124]
    study = httpx.post(
        f"{stow_url}/dicomweb/studies/{STUDY}.999",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE},
    )
    assert study.status_code == 409
    expired = _token(intake_context, "SITE-B", timedelta(microseconds=1))
    assert _post(stow_url, expired, body).status_code == 401


def test_stow_streams_a_large_body_in_small_chunks(
    stow_url: str, intake_context: IntakeContext
) -> None:
    token = _token(intake_context)
    big = instance_bytes(rows=1024, sop_uid="1.2.3.21.1")  # 2 MiB of pixels

    def chunks() -> Iterator[bytes]:
        body = _body(big, instance_bytes(sop_uid="1.2.3.21.2"))
        for start in range(0, len(body), 7001):
            yield body[start : start + 7001]

    response = httpx.post(
        f"{stow_url}/dicomweb/studies",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    with intake_context.db.sessions() as db:
        row = db.scalar(select(Instance).where(Instance.sop_instance_uid == "1.2.3.21.1"))
        assert row is not None
        assert intake_context.store.get(row.blob_key) == big
