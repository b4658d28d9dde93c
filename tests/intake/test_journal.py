"""The C-STORE write-ahead journal: replay after a killed listener, refusals while pending.

A killed listener is played by a :class:`Journal` whose lock is let go without
:meth:`Journal.close` (what the kernel does to a process killed with -9).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from sqlalchemy import select

from dicomhub.context import IntakeContext
from dicomhub.core.db import AuditEvent, Instance, QuarantineItem
from dicomhub.intake.dimse import DimseListener
from dicomhub.intake.journal import MARK, Journal
from dicomhub.intake.journaled import journal_root, recover
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import IntakeService
from tests.core.dicom.build import instance_bytes, make_dataset
from tests.intake.conftest import COLLECTION, PEER, SITE
from tests.intake.helpers import check_integrity, sha256

SENDER = Origin("dimse", PEER, "127.0.0.1", COLLECTION, SITE)


def _journaled(journal: Journal, data: bytes) -> Path:
    spooled, fd = journal.write([data[:200], memoryview(data)[200:]], SENDER)
    Journal.sync(fd)
    return spooled.path


def _die(journal: Journal) -> None:
    """What kill -9 does to a listener: its lock goes, its folder stays."""
    os.close(journal._lock_fd)


def test_replay_after_a_killed_listener(intake_context: IntakeContext) -> None:
    service = IntakeService(intake_context)
    root = journal_root(service)
    session = service.open_session(SENDER)
    recorded = instance_bytes(sop_uid="1.2.3.50.2")
    assert service.store(session, recorded).accepted  # recorded before the crash
    other_patient = instance_bytes(
        sop_uid="1.2.3.50.9", patient_id="PAT-009", study_uid="1.2.3.59", series_uid="1.2.3.59.1"
    )
    assert service.store(session, other_patient).accepted

    dead = Journal(root)
    fresh = instance_bytes(sop_uid="1.2.3.50.1")
    _journaled(dead, fresh)
    _journaled(dead, recorded)  # recorded, but killed before its slot was released
    _journaled(dead, instance_bytes(sop_uid="1.2.3.50.9"))  # PAT-001: a conflict
    torn = _journaled(dead, instance_bytes(sop_uid="1.2.3.50.3"))
    with torn.open("r+b") as handle:  # cut short: its mark no longer matches
        handle.truncate(300)
    unmarked = _journaled(dead, instance_bytes(sop_uid="1.2.3.50.4"))
    os.removexattr(unmarked, MARK)  # never answered (a refusal, say)
    _die(dead)
    live = Journal(root)  # another listener, alive: its slots are not touched
    pending = _journaled(live, instance_bytes(sop_uid="1.2.3.50.5"))
    try:
        assert recover(service, root) == 3
        assert recover(service, root) == 0  # the dead folder is gone
        assert not dead.folder.exists()
        assert pending.exists()
    finally:
        Journal.release(pending)
        live.close()

    stored = check_integrity(intake_context)
    assert stored == {
        "1.2.3.50.1": sha256(fresh),
        "1.2.3.50.2": sha256(recorded),
        "1.2.3.50.9": sha256(other_patient),
    }
    with intake_context.db.sessions() as db:
        replaced = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "intake.replace")))
        held = list(db.scalars(select(QuarantineItem.reason_code)))
    assert replaced == []  # the replayed twin of a recorded instance is no replacement
    assert held == ["patient_conflict"]


@pytest.fixture
def listener(intake_context: IntakeContext) -> Iterator[DimseListener]:
    server = DimseListener(intake_context)
    server.start()
    yield server
    server.shutdown()


def _sendable(**kwargs: object) -> Dataset:
    ds = make_dataset(**kwargs)  # type: ignore[arg-type]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_conflicts_refused_over_dimse_before_and_after_recording(
    listener: DimseListener, intake_context: IntakeContext
) -> None:
    service = IntakeService(intake_context)
    committed = instance_bytes(
        sop_uid="1.2.3.51.1", patient_id="PAT-777", study_uid="1.2.3.58", series_uid="1.2.3.58.1"
    )
    assert service.store(service.open_session(SENDER), committed).accepted
    ae = AE(ae_title=PEER)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    first = ae.associate("127.0.0.1", listener.port, ae_title="DICOMHUB")
    second = ae.associate("127.0.0.1", listener.port, ae_title="DICOMHUB")
    try:
        assert first.is_established
        assert second.is_established
        # a row committed long ago, for another patient
        assert first.send_c_store(_sendable(sop_uid="1.2.3.51.1")).Status == 0xC000
        # answered, perhaps not yet recorded: the other association still sees it
        assert first.send_c_store(_sendable(sop_uid="1.2.3.51.2")).Status == 0x0000
        clash = _sendable(sop_uid="1.2.3.51.2", patient_id="SOMEONE-ELSE")
        assert second.send_c_store(clash).Status == 0xC000
        # the same patient again replaces it
        again = _sendable(sop_uid="1.2.3.51.2", instance_number=2)
        assert second.send_c_store(again).Status == 0x0000
    finally:
        first.release()
        second.release()
    assert listener.journaled is not None
    listener.journaled.writer.wait_for()
    with intake_context.db.sessions() as db:
        rows = {i.sop_instance_uid: i for i in db.scalars(select(Instance))}
        held = sorted(db.scalars(select(QuarantineItem.reason_code)))
    assert set(rows) == {"1.2.3.51.1", "1.2.3.51.2"}
    assert rows["1.2.3.51.2"].instance_number == 2
    assert held == ["patient_conflict", "patient_conflict"]
    check_integrity(intake_context)
    assert [
        p.name for p in listener.journaled.journal.folder.glob("*.dcm") if p.stat().st_size
    ] == []
