"""The checks an arriving instance passes, in order, each refusing with a stable reason.

Each check returns None when the instance passes, or a :class:`Held` naming the
quarantine reason; only a credential out of scope raises (that submission is
refused outright, its bytes are not kept).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.uid import UID
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Instance, Series, Site, Study
from dicomhub.core.db.catalog import Patient
from dicomhub.core.db.intake import SitePolicy
from dicomhub.core.deid.provenance import read_provenance
from dicomhub.core.dicom.header import Header, UnreadableError, check_complete, read_header
from dicomhub.core.dicom.index import IndexRecord, index_record, text
from dicomhub.core.dicom.validate import missing_required, vr_violations
from dicomhub.errors import BadRequest, Forbidden
from dicomhub.intake.origin import Origin
from dicomhub.intake.quarantine import Held, Reason

LOGGER = logging.getLogger(__name__)

#: Where an instance may name its own collection and site (the kit writes them).
COLLECTION_TAG = "00120020"  # ClinicalTrialProtocolID
SITE_TAG = "00120030"  # ClinicalTrialSiteID


@dataclass(frozen=True)
class Parsed:
    """A readable instance: its header, DICOM JSON and search columns."""

    header: Header
    json: dict[str, Any]
    record: IndexRecord


def parse(path: Path) -> Parsed | Held:
    """Read and index a spooled file; an unreadable or truncated one is held."""
    try:
        header = read_header(path)
        check_complete(path, header)
        json = header.to_json()
    except UnreadableError as exc:
        return Held(Reason.UNREADABLE, str(exc))
    return Parsed(header, json, index_record(json, header.transfer_syntax_uid))


def check_sop_class(parsed: Parsed) -> None:
    """Refuse (BadRequest, failure 0x0122) an instance whose SOP class is no known storage class."""
    uid = UID(parsed.record.sop_class_uid)
    if uid and not uid.name.endswith("Storage"):
        what = (
            "unknown SOP class" if uid.name == str(uid) else f"not a storage SOP class ({uid.name})"
        )
        raise BadRequest(f"{what}: {uid}", detail={"failure": 0x0122})


def placement(origin: Origin, parsed: Parsed) -> tuple[str, str]:
    """The collection and site an instance goes to; Forbidden if outside the credential.

    The instance may name them (ClinicalTrialProtocolID / ClinicalTrialSiteID);
    otherwise the credential's scope decides.
    """
    named_collection = text(parsed.json, COLLECTION_TAG, 128)
    named_site = text(parsed.json, SITE_TAG, 128)
    collection = named_collection or origin.collection or ""
    site = named_site or origin.site or ""
    if origin.collection is not None and collection != origin.collection:
        raise Forbidden(
            f"this credential covers collection {origin.collection}, not {collection}",
            detail={"collection": collection},
        )
    if origin.site is not None and site != origin.site:
        raise Forbidden(
            f"this credential covers site {origin.site}, not {site}", detail={"site": site}
        )
    return collection, site


@dataclass(frozen=True)
class Place:
    """A collection and site as intake needs them, looked up once per connection.

    A sender's connection (a STOW request, a DIMSE association) keeps its places,
    so the rows and the site's de-identification policy are read once, not per
    instance; a policy changed mid-association applies from the next one.
    """

    collection: str
    site: str
    collection_id: int = 0
    site_id: int = 0
    unplaced: Held | None = None
    has_policy: bool = False
    require_provenance: bool = True
    kit_id: str = ""
    recipe_hash: str = ""


def load_place(session: Session, collection: str, site: str) -> Place:
    """The site's ids and policy, or the unknown_collection / unknown_site reason."""
    row = session.scalar(select(Collection).where(Collection.name == collection))
    if not collection or row is None:
        held = Held(Reason.UNKNOWN_COLLECTION, f"no collection named {collection!r}")
        return Place(collection, site, unplaced=held)
    found = session.scalar(select(Site).where(Site.collection_id == row.id, Site.name == site))
    if found is None:
        held = Held(Reason.UNKNOWN_SITE, f"collection {collection} has no site named {site!r}")
        return Place(collection, site, collection_id=row.id, unplaced=held)
    policy = session.scalar(
        select(SitePolicy).where(SitePolicy.collection == collection, SitePolicy.site == site)
    )
    if policy is None:
        return Place(collection, site, row.id, found.id)
    return Place(
        collection, site, row.id, found.id, has_policy=True,
        require_provenance=policy.require_deid_provenance,
        kit_id=policy.kit_id or "", recipe_hash=policy.recipe_hash or "",
    )  # fmt: skip


def check_content(parsed: Parsed) -> Held | None:
    """Required attributes first (they make the instance unplaceable), then the VR rules."""
    missing = missing_required(parsed.header.dataset)
    if missing:
        names = ", ".join(v.keyword for v in missing)
        return Held(
            Reason.MISSING_REQUIRED,
            f"missing required attributes: {names}",
            extra={"violations": [v.to_dict() for v in missing]},
        )
    violations = vr_violations(parsed.header.dataset)
    if violations:
        shown = "; ".join(v.detail for v in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        return Held(
            Reason.VR_VIOLATION,
            f"{len(violations)} value representation violation(s): {shown}{more}",
            extra={"violations": [v.to_dict() for v in violations]},
        )
    return None


def check_provenance(parsed: Parsed, place: Place) -> Held | None:
    """The kit's private block must carry the kit id and recipe hash issued to the site.

    A site whose policy turns ``require_deid_provenance`` off is not checked; a
    site without a policy (or without a registered kit) is refused, because
    intake cannot tell a de-identified instance from one that is not.
    """
    if place.has_policy and not place.require_provenance:
        return None
    mark = read_provenance(parsed.header.dataset)
    if not mark:
        return Held(Reason.DEID_PROVENANCE, "no de-identification provenance (DICOMHUB 1.0 block)")
    if not place.has_policy or not place.kit_id or not place.recipe_hash:
        return Held(
            Reason.DEID_PROVENANCE,
            f"no de-identification kit is registered for {place.collection}/{place.site}",
        )
    kit, recipe = mark.get("kit_id", "").strip(), mark.get("recipe_hash", "").strip()
    if kit != place.kit_id:
        return Held(Reason.DEID_PROVENANCE, f"kit {kit!r} is not the kit issued to {place.site}")
    if recipe != place.recipe_hash:
        return Held(Reason.DEID_PROVENANCE, f"recipe hash {recipe!r} is not the site's recipe")
    return None


@dataclass(frozen=True)
class Stored:
    """What the catalogue holds for one SOP Instance UID."""

    id: int
    blob_key: str
    size: int
    series_id: int
    patient_id: str


def stored_instances(
    session: Session, sop_instance_uids: Sequence[str], *, lock: bool = False
) -> dict[str, Stored]:
    """The stored instances among ``sop_instance_uids``, with their patient IDs.

    With ``lock`` the instance rows are locked for the transaction (PostgreSQL), so
    two replacements of one instance cannot both read the same old blob.
    """
    found: dict[str, Stored] = {}
    unique = list(dict.fromkeys(sop_instance_uids))
    query = _STORED_LOCKED if lock else _STORED
    connection = session.connection()
    for start in range(0, len(unique), _IN_CHUNK):
        rows = connection.execute(query, {"uids": unique[start : start + _IN_CHUNK]})
        for row in rows:
            found[row[0]] = Stored(row[1], row[2], row[3], row[4], row[5])
    return found


#: Built once: the statement is run for every batch, and building it costs more than running it.
_STORED = (
    select(
        Instance.sop_instance_uid, Instance.id, Instance.blob_key, Instance.size,
        Instance.series_id, Patient.patient_id,
    )
    .join(Series, Instance.series_id == Series.id)
    .join(Study, Series.study_id == Study.id)
    .join(Patient, Study.patient_id == Patient.id)
    .where(Instance.sop_instance_uid.in_(bindparam("uids", expanding=True)))
)  # fmt: skip
_STORED_LOCKED = _STORED.with_for_update(of=Instance.__table__)


#: UIDs per IN list (well under every database's parameter limit).
_IN_CHUNK = 500


def check_patient(stored: Stored | None, record: IndexRecord) -> Held | None:
    """A SOP Instance UID seen before with another Patient ID is a conflict, never a replace."""
    if stored is not None and stored.patient_id != record.patient_id:
        return Held(
            Reason.PATIENT_CONFLICT,
            f"SOP Instance UID {record.sop_instance_uid} is already stored for another patient",
            extra={"stored_patient_id": stored.patient_id},
        )
    return None
