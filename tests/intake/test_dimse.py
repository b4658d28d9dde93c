"""The C-STORE SCP against real peers: dcmtk storescu/echoscu and pynetdicom."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from dicomhub.context import IntakeContext
from dicomhub.core.db import Instance, QuarantineItem
from dicomhub.intake.dimse import DimseListener
from dicomhub.intake.part10 import file_head
from tests.core.dicom.build import instance_bytes, make_dataset
from tests.intake.conftest import PEER

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


@pytest.fixture
def listener(intake_context: IntakeContext) -> Iterator[DimseListener]:
    server = DimseListener(intake_context)
    server.start()
    yield server
    server.shutdown()  # the context is closed by its own fixture


def _dcmtk(tool: str, port: int, *args: str, aet: str = PEER) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(
        [tool, "-aet", aet, "-aec", "DICOMHUB", "127.0.0.1", str(port), *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def test_echo_and_unknown_ae(listener: DimseListener) -> None:
    assert _dcmtk("echoscu", listener.port).returncode == 0
    refused = _dcmtk("echoscu", listener.port, aet="STRANGER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stdout + refused.stderr


def test_storescu_stores_many_in_one_association(
    listener: DimseListener, intake_context: IntakeContext, tmp_path: Path
) -> None:
    files = []
    for i in range(12):
        syntax = ImplicitVRLittleEndian if i % 2 else ExplicitVRLittleEndian
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(instance_bytes(syntax, instance_number=i, sop_uid=f"1.2.3.9.{i + 1}"))
        files.append(str(path))
    result = _dcmtk("storescu", listener.port, *files)
    assert result.returncode == 0, result.stdout + result.stderr
    with intake_context.db.sessions() as db:
        stored = {row.sop_instance_uid: row for row in db.scalars(select(Instance))}
    assert set(stored) == {f"1.2.3.9.{i + 1}" for i in range(12)}
    for i, name in enumerate(files):
        # storescu sends the dataset as read; the stored Part 10 file ends with the same bytes
        kept = intake_context.store.get(stored[f"1.2.3.9.{i + 1}"].blob_key)
        assert kept.endswith(Path(name).read_bytes()[-512:])  # the pixel data


def _sendable(**kwargs: object) -> Dataset:
    ds = make_dataset(**kwargs)  # type: ignore[arg-type]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_pynetdicom_statuses(listener: DimseListener, intake_context: IntakeContext) -> None:
    ae = AE(ae_title=PEER)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="DICOMHUB")
    assert assoc.is_established
    try:
        good = _sendable(sop_uid="1.2.3.10.1")
        assert assoc.send_c_store(good).Status == 0x0000
        bad = _sendable(sop_uid="1.2.3.10.2", Modality="ct")
        assert assoc.send_c_store(bad).Status == 0xC000
        conflict = _sendable(sop_uid="1.2.3.10.1", patient_id="SOMEONE-ELSE")
        assert assoc.send_c_store(conflict).Status == 0xC000
        missing = _sendable(sop_uid="1.2.3.10.3", PatientID=None)
        assert assoc.send_c_store(missing).Status == 0xA900
    finally:
        assoc.release()
    with intake_context.db.sessions() as db:
        reasons = sorted(db.scalars(select(QuarantineItem.reason_code)))
    assert reasons == ["missing_required", "patient_conflict", "vr_violation"]


@pytest.mark.parametrize(
    ("sop_uid", "syntax"),
    [("1.2.3.4", ExplicitVRLittleEndian), ("1.2.3.45", ImplicitVRLittleEndian)],  # odd, even
)
def test_file_head_is_what_pynetdicom_writes(sop_uid: str, syntax: UID) -> None:
    meta = create_file_meta(
        sop_class_uid=UID(CTImageStorage), sop_instance_uid=UID(sop_uid), transfer_syntax=syntax
    )
    expected = b"\x00" * 128 + b"DICM" + encode_file_meta(meta)
    assert file_head(CTImageStorage, sop_uid, syntax) == expected


def test_without_extended_attributes_each_instance_commits_before_its_answer(
    intake_context: IntakeContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal folder on a filesystem without user xattrs: C-STORE still stores everything.

    The filesystem's refusal is injected (every filesystem these tests run on has
    xattrs); the listener must fall back to recording each instance before answering.
    """
    import errno

    def refuse(*_args: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    server = DimseListener(intake_context)
    server.start()
    try:
        assert server.journaled is None
        files = []
        for i in range(3):
            path = tmp_path / f"{i}.dcm"
            path.write_bytes(instance_bytes(ExplicitVRLittleEndian, sop_uid=f"1.2.3.8.{i + 1}"))
            files.append(str(path))
        result = _dcmtk("storescu", server.port, *files)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        server.shutdown()
    with intake_context.db.sessions() as db:
        stored = set(db.scalars(select(Instance.sop_instance_uid)))
    assert stored == {"1.2.3.8.1", "1.2.3.8.2", "1.2.3.8.3"}
