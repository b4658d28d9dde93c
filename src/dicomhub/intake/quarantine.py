"""Quarantine: refused instances kept with their bytes, a stable reason code and a detail.

A manager lists, inspects, releases (re-runs intake on the kept bytes after a fix
of the collection, the site policy or the archive) or deletes them; the CLI and
the JSON API both call the functions here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from dicomhub.core.auth import audit
from dicomhub.core.db import QuarantineItem, QuarantineState, utcnow
from dicomhub.core.dicom.header import UnreadableError, read_header
from dicomhub.core.store.base import BlobStore, blob_key_for
from dicomhub.errors import ArchiveError, BadRequest, NotFound

LOGGER = logging.getLogger(__name__)

QUARANTINE_PREFIX = "quarantine"


class Reason(enum.StrEnum):
    """Why intake refused an instance; the values are stable API codes."""

    UNREADABLE = "unreadable"
    VR_VIOLATION = "vr_violation"
    MISSING_REQUIRED = "missing_required"
    DEID_PROVENANCE = "deid_provenance"
    PATIENT_CONFLICT = "patient_conflict"
    UNKNOWN_COLLECTION = "unknown_collection"
    UNKNOWN_SITE = "unknown_site"


#: The DIMSE status (and STOW FailureReason) reported for each reason.
DIMSE_STATUS: dict[Reason, int] = {
    Reason.UNREADABLE: 0xC000,  # cannot understand
    Reason.VR_VIOLATION: 0xC000,
    Reason.MISSING_REQUIRED: 0xA900,  # data set does not match SOP class
    Reason.DEID_PROVENANCE: 0xC000,
    Reason.PATIENT_CONFLICT: 0xC000,
    Reason.UNKNOWN_COLLECTION: 0xC000,
    Reason.UNKNOWN_SITE: 0xC000,
}


@dataclass(frozen=True)
class Held:
    """What the service needs to record a quarantined instance."""

    reason: Reason
    detail: str
    collection: str = ""
    site: str = ""
    sop_instance_uid: str = ""
    patient_id: str = ""
    extra: dict[str, Any] | None = None


def quarantine_key(sha256: str) -> str:
    """Quarantined bytes live apart from accepted ones, so deleting one never hits the other."""
    return f"{QUARANTINE_PREFIX}/{blob_key_for(sha256)}"


def record(
    session: Session, held: Held, *, blob_key: str, size: int, sha256: str, origin: str
) -> QuarantineItem:
    """Add a held item (its bytes are already durable under ``blob_key``)."""
    item = QuarantineItem(
        reason_code=held.reason.value,
        detail=held.detail[:4000],
        blob_key=blob_key,
        size=size,
        sha256=sha256,
        collection=held.collection[:128],
        site=held.site[:128],
        sop_instance_uid=held.sop_instance_uid[:64],
        patient_id=held.patient_id[:64],
        origin=origin[:256],
    )
    session.add(item)
    session.flush()
    audit(
        session,
        origin.split(":", 1)[-1].split("@")[0] or "intake",
        "intake.quarantine",
        "quarantine_item",
        item.id,
        origin,
        {"reason": held.reason.value, "sop_instance_uid": held.sop_instance_uid},
    )
    return item


def list_items(
    session: Session,
    *,
    state: QuarantineState | None = QuarantineState.HELD,
    reason: str | None = None,
    collection: str | None = None,
    collections: Collection[str] | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[QuarantineItem]:
    """Held (or other state) items, newest first.

    ``collections`` (when not None) keeps only items of those collections, for
    callers whose grants do not reach the whole archive.
    """
    query = select(QuarantineItem).order_by(QuarantineItem.id.desc())
    if state is not None:
        query = query.where(QuarantineItem.state == state)
    if reason:
        query = query.where(QuarantineItem.reason_code == reason)
    if collection:
        query = query.where(QuarantineItem.collection == collection)
    if collections is not None:
        query = query.where(QuarantineItem.collection.in_(sorted(collections)))
    return session.scalars(query.limit(limit).offset(offset)).all()


def get_item(session: Session, item_id: int) -> QuarantineItem:
    """One item; NotFound if there is none."""
    item = session.get(QuarantineItem, item_id)
    if item is None:
        raise NotFound(f"no quarantine item {item_id}")
    return item


def counts_by_reason(session: Session) -> dict[tuple[str, str, str], int]:
    """Held items per (collection, site, reason)."""
    rows = session.execute(
        select(
            QuarantineItem.collection,
            QuarantineItem.site,
            QuarantineItem.reason_code,
            func.count(QuarantineItem.id),
        )
        .where(QuarantineItem.state == QuarantineState.HELD)
        .group_by(QuarantineItem.collection, QuarantineItem.site, QuarantineItem.reason_code)
    )
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def delete_item(
    session: Session, store: BlobStore, item_id: int, *, actor: str, origin: str
) -> QuarantineItem:
    """Mark an item deleted; its bytes go once that commits (and no held item shares them).

    Deleting only after the commit means a failed or rolled-back delete never
    leaves a held item without its bytes.
    """
    item = get_item(session, item_id)
    if item.state is not QuarantineState.HELD:
        raise BadRequest(f"quarantine item {item_id} is {item.state.value}, not held")
    item.state = QuarantineState.DELETED
    item.updated_at = utcnow()
    audit(session, actor, "quarantine.delete", "quarantine_item", item.id, origin, {})
    session.flush()
    if not shared(session, item):
        key = item.blob_key

        @event.listens_for(session, "after_commit", once=True)
        def _drop(_session: Session) -> None:
            try:
                store.delete(key)
            except (ArchiveError, OSError) as exc:
                LOGGER.warning("could not remove quarantined bytes %s: %s", key, exc)

    return item


def attributes_of(store: BlobStore, key: str, state: QuarantineState) -> dict[str, str]:
    """The main attributes of a held item, read from its kept bytes (empty if unreadable)."""
    if state is not QuarantineState.HELD:
        return {}
    try:
        header = read_header(b"".join(store.open(key)))
    except (ArchiveError, UnreadableError, OSError):
        return {}
    ds = header.dataset
    found = {"TransferSyntaxUID": header.transfer_syntax_uid}
    for keyword in _SHOWN:
        value = ds.get(keyword)
        if value is not None and str(value) != "":
            found[keyword] = str(value)[:256]
    return found


_SHOWN = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
    "Modality", "StudyDate", "SeriesDescription", "InstanceNumber",
    "ClinicalTrialProtocolID", "ClinicalTrialSiteID",
)  # fmt: skip


def shared(session: Session, item: QuarantineItem) -> bool:
    """Whether another held item keeps the same bytes."""
    other = session.scalar(
        select(func.count(QuarantineItem.id)).where(
            QuarantineItem.blob_key == item.blob_key,
            QuarantineItem.id != item.id,
            QuarantineItem.state == QuarantineState.HELD,
        )
    )
    return bool(other)


def item_dict(item: QuarantineItem) -> dict[str, Any]:
    """The JSON form of an item (API and CLI)."""
    return {
        "id": item.id,
        "reason": item.reason_code,
        "detail": item.detail,
        "state": item.state.value,
        "collection": item.collection,
        "site": item.site,
        "sop_instance_uid": item.sop_instance_uid,
        "patient_id": item.patient_id,
        "size": item.size,
        "sha256": item.sha256,
        "origin": item.origin,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }
