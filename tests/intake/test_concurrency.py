"""Real peers at once: STOW and C-STORE senders in parallel, dicomweb-client, a client
that goes away mid-request, and compressed transfer syntaxes sent by dcmtk storescu."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import func, select

from dicomhub.context import IntakeContext
from dicomhub.core.db import Instance, QuarantineItem
from dicomhub.intake.dimse import DimseListener
from dicomhub.sample import make_sample
from dicomhub.web.app import create_intake_app
from tests.core.dicom.build import instance_bytes
from tests.fixtures.http import serve_app
from tests.intake.conftest import PEER
from tests.intake.helpers import (
    CONTENT_TYPE,
    check_integrity,
    multipart,
    sha256,
    token_for,
)

#: The storescu option that proposes each compressed syntax (and the uncompressed ones).
PROPOSE = {
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.1.99": "-xd",
}
needs_dcmtk = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


@pytest.fixture
def url(intake_context: IntakeContext) -> Iterator[str]:
    with serve_app(create_intake_app(intake_context.settings, intake_context)) as base:
        yield base


@pytest.fixture
def listener(intake_context: IntakeContext) -> Iterator[DimseListener]:
    server = DimseListener(intake_context)
    server.start()
    yield server
    server._server.shutdown()


def _version(uid: str, n: int) -> bytes:
    """Version ``n`` of instance ``uid`` (same patient, so a later one replaces)."""
    return instance_bytes(sop_uid=uid, instance_number=n, series_uid="1.2.3.80.0")


def test_parallel_stow_and_cstore_same_and_different_uids(
    url: str, listener: DimseListener, intake_context: IntakeContext
) -> None:
    token = token_for(intake_context, "kit-a", "submitter")
    shared = [f"1.2.3.80.{i}" for i in range(10)]
    sent: dict[str, set[str]] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def note(uid: str, data: bytes) -> None:
        with lock:
            sent.setdefault(uid, set()).add(sha256(data))

    def stow(worker: int) -> None:
        mine = [f"1.2.3.81.{worker}.{i}" for i in range(12)]
        uids = mine + shared
        versions = {uid: _version(uid, 1 + worker) for uid in uids}
        headers = {"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE}
        for start in range(0, len(uids), 5):
            batch = uids[start : start + 5]
            response = httpx.post(f"{url}/dicomweb/studies", headers=headers, timeout=60,
                                  content=multipart(versions[u] for u in batch))  # fmt: skip
            if response.status_code != 200:
                errors.append(f"stow {worker}: {response.status_code} {response.text[:200]}")
            for uid in batch:
                note(uid, versions[uid])

    def cstore(worker: int) -> None:
        ae = AE(ae_title=PEER)
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", listener.port, ae_title="DICOMHUB")
        try:
            for uid in [f"1.2.3.82.{worker}.{i}" for i in range(12)] + shared:
                status = assoc.send_c_store(dcmread(io.BytesIO(_version(uid, 10 + worker))))
                if status.Status != 0x0000:
                    errors.append(f"cstore {worker} {uid}: {status.Status:#06x}")
                sent.setdefault(uid, set())
        finally:
            assoc.release()

    threads = [threading.Thread(target=stow, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=cstore, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    stored = check_integrity(intake_context)
    assert set(stored) == set(sent)  # nothing lost, nothing doubled (UIDs are unique rows)
    assert len(stored) == 3 * 12 + 2 * 12 + len(shared)
    for uid in (u for u in sent if u.startswith("1.2.3.81.")):
        assert stored[uid] in sent[uid]
    with intake_context.db.sessions() as db:
        assert db.scalar(select(func.count(QuarantineItem.id))) == 0


def test_dicomweb_client_store_instances(url: str, intake_context: IntakeContext) -> None:
    token = token_for(intake_context, "kit-a", "submitter")
    client = DICOMwebClient(url=f"{url}/dicomweb", headers={"Authorization": f"Bearer {token}"})
    datasets = [dcmread(io.BytesIO(_version(f"1.2.3.83.{i}", i))) for i in range(6)]
    answer = client.store_instances(datasets)
    client._session.close()
    referenced = answer.ReferencedSOPSequence
    assert sorted(item.ReferencedSOPInstanceUID for item in referenced) == [
        f"1.2.3.83.{i}" for i in range(6)
    ]
    assert len(check_integrity(intake_context)) == 6


def test_client_gone_mid_request_leaves_nothing_half_stored(
    url: str, intake_context: IntakeContext
) -> None:
    token = token_for(intake_context, "kit-a", "submitter")
    body = multipart([instance_bytes(sop_uid="1.2.3.84.1", rows=256)])
    cut = body[: len(body) // 2]
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /dicomweb/studies HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + cut)
        time.sleep(0.5)
    spool = Path(intake_context.settings.data_dir) / "spool" / "intake"
    deadline = time.monotonic() + 10
    while any(spool.glob("in-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(spool.glob("in-*")) == []
    with intake_context.db.sessions() as db:
        assert db.scalar(select(func.count(Instance.id))) == 0
        assert db.scalar(select(func.count(QuarantineItem.id))) == 0
    assert list(intake_context.store.keys()) == []
    # the server is fine afterwards
    fine = httpx.post(
        f"{url}/dicomweb/studies", content=multipart([instance_bytes(sop_uid="1.2.3.84.2")]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": CONTENT_TYPE},
    )  # fmt: skip
    assert fine.status_code == 200


@needs_dcmtk
def test_storescu_sends_compressed_sample(
    listener: DimseListener, intake_context: IntakeContext, tmp_path: Path
) -> None:
    # The sample carries fake PHI and no de-identification mark: the conftest policy of
    # SITE-A does not require provenance, which is what lets it in.
    manifest = make_sample(tmp_path / "sample", patients=1)
    groups: dict[str, list[str]] = {}
    for path in sorted((tmp_path / "sample").rglob("*.dcm")):
        syntax = str(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(PROPOSE.get(syntax, "-x="), []).append(str(path))
    assert len(groups) >= 4
    env = {**os.environ, "TCP_NODELAY": "1"}
    for option, files in groups.items():  # storescu proposes one compressed syntax per run
        result = subprocess.run(
            ["storescu", "-aet", PEER, "-aec", "DICOMHUB", "127.0.0.1", str(listener.port),
             option, "--required", *files],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    stored = check_integrity(intake_context)
    with intake_context.db.sessions() as db:
        held = list(db.scalars(select(QuarantineItem)))
        syntaxes = set(db.scalars(select(Instance.transfer_syntax_uid)))
    assert [(q.reason_code, q.detail) for q in held] == []
    assert len(stored) == len(manifest.files)
    assert {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"} <= syntaxes
