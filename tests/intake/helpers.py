"""Accounts, tokens and multipart bodies shared by the intake tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from dicomhub.context import IntakeContext
from dicomhub.core.auth import create_token, create_user, grant_role
from tests.intake.conftest import COLLECTION, SITE

BOUNDARY = "dicomhub-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def token_for(
    context: IntakeContext,
    username: str,
    role: str,
    collection: str | None = COLLECTION,
    site: str | None = SITE,
) -> str:
    """A fresh user holding ``role`` over the scope, and a token for exactly that scope."""
    with context.accounts.sessions() as db, db.begin():
        user = create_user(db, username, actor="admin", origin="test")
        grant_role(db, user, role, actor="admin", origin="test", collection=collection, site=site)
        _row, plaintext = create_token(
            db, user, role, collection, site, None,
            secret_key=context.settings.secret_key, actor="admin", origin="test",
        )  # fmt: skip
    return plaintext


def multipart(parts: Iterable[bytes], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_integrity(context: IntakeContext) -> dict[str, str]:
    """Every instance row has its blob, whose sha256 and size match; series counters agree.

    Returns SOP Instance UID -> sha256 of what is stored.
    """
    from sqlalchemy import func, select

    from dicomhub.core.db import Instance, Series

    stored: dict[str, str] = {}
    with context.db.sessions() as db:
        for row in db.scalars(select(Instance)):
            data = context.store.get(row.blob_key)  # NotFound would be an orphan row
            assert hashlib.sha256(data).hexdigest() == row.sha256, row.sop_instance_uid
            assert row.size == len(data)
            stored[row.sop_instance_uid] = row.sha256
        counted = dict(
            db.execute(select(Instance.series_id, func.count()).group_by(Instance.series_id)).all()
        )
        for series in db.scalars(select(Series)):
            assert series.instance_count == counted.get(series.id, 0), series.series_instance_uid
    return stored
