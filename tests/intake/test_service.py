"""The intake service: every check, its reason code, replacement and durability order."""

from __future__ import annotations

from pydicom.uid import ImplicitVRLittleEndian
from sqlalchemy import func, select

from dicomhub.context import IntakeContext
from dicomhub.core.db import AuditEvent, Instance, QuarantineItem, QuarantineState, Series
from dicomhub.core.db.intake import SitePolicy
from dicomhub.core.store.base import blob_key_for
from dicomhub.intake import quarantine
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import IntakeService, Outcome
from tests.core.dicom.build import instance_bytes
from tests.intake.conftest import COLLECTION, SITE

ORIGIN = Origin("cli", "tester", "", COLLECTION, SITE)


def _rows(context: IntakeContext, model: type) -> list:  # type: ignore[type-arg]
    with context.db.sessions() as db:
        return list(db.scalars(select(model)))


def test_store_indexes_and_keeps_the_bytes(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(ORIGIN)
    data = instance_bytes(ImplicitVRLittleEndian)
    result = service.store(session, data)
    assert result.outcome is Outcome.STORED
    assert result.status == 0x0000
    [instance] = _rows(intake_context, Instance)
    assert instance.sha256 == result.sha256
    assert instance.blob_key == blob_key_for(result.sha256)
    assert intake_context.store.get(instance.blob_key) == data
    assert instance.header["00080060"] == {"vr": "CS", "Value": ["CT"]}
    [series] = _rows(intake_context, Series)
    assert (series.modality, series.body_part_examined, series.instance_count) == ("CT", "CHEST", 1)
    assert series.total_size == len(data)
    assert session.stored == 1


def test_same_uid_same_patient_replaces_and_is_audited(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(ORIGIN)
    first = service.store(session, instance_bytes(sop_uid="1.2.3.4.100", instance_number=1))
    second = service.store(session, instance_bytes(sop_uid="1.2.3.4.100", instance_number=2))
    assert (first.outcome, second.outcome) == (Outcome.STORED, Outcome.REPLACED)
    [instance] = _rows(intake_context, Instance)
    assert instance.instance_number == 2
    assert not intake_context.store.exists(blob_key_for(first.sha256))
    [series] = _rows(intake_context, Series)
    assert series.instance_count == 1
    actions = [e.action for e in _rows(intake_context, AuditEvent)]
    assert "intake.replace" in actions


def test_same_uid_other_patient_is_a_conflict(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(ORIGIN)
    service.store(session, instance_bytes(sop_uid="1.2.3.4.101"))
    result = service.store(session, instance_bytes(sop_uid="1.2.3.4.101", patient_id="OTHER"))
    assert (result.outcome, result.reason) == (Outcome.QUARANTINED, "patient_conflict")
    [item] = _rows(intake_context, QuarantineItem)
    assert item.reason_code == "patient_conflict"
    assert intake_context.store.exists(item.blob_key)
    assert len(_rows(intake_context, Instance)) == 1


def test_each_reason_code(service: IntakeService, intake_context: IntakeContext) -> None:
    session = service.open_session(ORIGIN)
    good = instance_bytes()
    cases = {
        "unreadable": b"not dicom at all" * 20,
        "missing_required": instance_bytes(PatientID=None),
        "vr_violation": instance_bytes(Modality="ct"),
    }
    for reason, data in cases.items():
        result = service.store(session, data)
        assert (result.outcome, result.reason) == (Outcome.QUARANTINED, reason), result
    truncated = service.store(session, good[:-100])
    assert truncated.reason == "unreadable"
    assert "truncated" in truncated.detail
    elsewhere = service.open_session(Origin("cli", "t", "", "NO-SUCH", None))
    assert service.store(elsewhere, instance_bytes()).reason == "unknown_collection"
    nosite = service.open_session(Origin("cli", "t", "", COLLECTION, "SITE-Z"))
    assert service.store(nosite, instance_bytes()).reason == "unknown_site"
    held = {i.reason_code for i in _rows(intake_context, QuarantineItem)}
    assert held == {"unreadable", "missing_required", "vr_violation", "unknown_collection",
                    "unknown_site"}  # fmt: skip
    assert _rows(intake_context, Instance) == []


def test_deid_provenance_required_by_default(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(Origin("cli", "t", "", COLLECTION, "SITE-B"))
    result = service.store(session, instance_bytes())
    assert (result.outcome, result.reason) == (Outcome.QUARANTINED, "deid_provenance")
    with intake_context.db.sessions() as db, db.begin():
        db.add(SitePolicy(collection=COLLECTION, site="SITE-B", require_deid_provenance=False))
    [item] = quarantine.list_items(intake_context.db.sessions())
    released = service.release(item.id, actor="manager")
    assert released.outcome is Outcome.STORED
    with intake_context.db.sessions() as db:
        assert quarantine.get_item(db, item.id).state is QuarantineState.RELEASED
    assert not intake_context.store.exists(item.blob_key)


def test_releasing_one_of_two_identical_held_items_keeps_the_bytes_of_the_other(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(Origin("cli", "t", "", COLLECTION, "SITE-B"))
    data = instance_bytes()
    first, second = service.store(session, data), service.store(session, data)
    assert (first.reason, second.reason) == ("deid_provenance", "deid_provenance")
    assert first.quarantine_id != second.quarantine_id
    with intake_context.db.sessions() as db, db.begin():
        db.add(SitePolicy(collection=COLLECTION, site="SITE-B", require_deid_provenance=False))
    assert first.quarantine_id is not None
    assert second.quarantine_id is not None
    assert service.release(first.quarantine_id, actor="manager").outcome is Outcome.STORED
    with intake_context.db.sessions() as db:
        other = quarantine.get_item(db, second.quarantine_id)
        assert other.state is QuarantineState.HELD
    assert intake_context.store.get(other.blob_key) == data  # still there for the other item
    replaced = service.release(second.quarantine_id, actor="manager")
    assert replaced.outcome is Outcome.REPLACED  # the same instance again
    assert not intake_context.store.exists(other.blob_key)  # now nobody holds them


def test_out_of_scope_and_unknown_sop_class_are_refused_not_kept(
    service: IntakeService, intake_context: IntakeContext
) -> None:
    session = service.open_session(ORIGIN)
    other = service.store(session, instance_bytes(ClinicalTrialSiteID="SITE-B"))
    assert (other.outcome, other.status) == (Outcome.REFUSED, 0x0124)
    unknown = service.store(session, instance_bytes(SOPClassUID="1.2.3.999"))
    assert (unknown.outcome, unknown.status) == (Outcome.REFUSED, 0x0122)
    empty = service.store(session, b"")
    assert empty.outcome is Outcome.REFUSED
    with intake_context.db.sessions() as db:
        assert db.scalar(select(func.count(QuarantineItem.id))) == 0
    assert list(intake_context.store.keys()) == []


def test_quarantine_delete(service: IntakeService, intake_context: IntakeContext) -> None:
    session = service.open_session(ORIGIN)
    result = service.store(session, b"garbage" * 50)
    assert result.quarantine_id is not None
    with intake_context.db.sessions() as db, db.begin():
        item = quarantine.delete_item(
            db, intake_context.store, result.quarantine_id, actor="m", origin="test"
        )
        key = item.blob_key
    assert not intake_context.store.exists(key)
