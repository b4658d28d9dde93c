"""The checks that stand between staging and publication.

Every check compares two independent readings: the sha256 intake recorded
against the bytes read from the intake store; the sha256 staged against the
bytes read back from the public store; the plan's counts against the staged
items and against the catalogue rows written in the publication transaction.
Any difference raises :class:`PromotionMismatch`, which fails the release and
publishes nothing of it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Instance, Patient, ReleaseItem, Series, Study
from dicomhub.core.store.base import BlobStore
from dicomhub.errors import ArchiveError, Conflict
from dicomhub.promote.plan import Counts, Plan, count_items

LOGGER = logging.getLogger(__name__)
SHOWN = 5


class PromotionMismatch(Conflict):
    """Two sides disagree (counts or hashes): the release stops and nothing is published."""

    code = "promotion_mismatch"


def sha256_of(store: BlobStore, key: str) -> tuple[str, int]:
    """The sha256 and size of a stored blob, streamed."""
    digest = hashlib.sha256()
    size = 0
    for chunk in store.open(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _problems(lines: Sequence[str], what: str) -> str:
    more = f" (and {len(lines) - SHOWN} more)" if len(lines) > SHOWN else ""
    return f"{what}: " + "; ".join(lines[:SHOWN]) + more


def check_staged(plan: Plan, items: Sequence[ReleaseItem]) -> None:
    """Every planned instance staged once, from the bytes intake recorded, nothing else."""
    planned = {item.sop_instance_uid: item for item in plan.items}
    staged = {item.sop_instance_uid: item for item in items}
    lines = [f"{uid} not staged" for uid in sorted(planned.keys() - staged.keys())]
    lines += [f"{uid} staged but not planned" for uid in sorted(staged.keys() - planned.keys())]
    for uid in sorted(planned.keys() & staged.keys()):
        if planned[uid].sha256 != staged[uid].source_sha256:
            lines.append(f"{uid} staged from other intake bytes")
    if lines:
        raise PromotionMismatch(_problems(lines, "staged items do not match the intake plan"))
    compare_counts(plan.counts, count_items(items), "intake", "staged")


def verify_blobs(
    store: BlobStore,
    items: Sequence[ReleaseItem],
    *,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Read every staged blob back from the public store and compare size and sha256."""

    def check(item: ReleaseItem) -> str | None:
        try:
            sha, size = sha256_of(store, item.blob_key)
        except ArchiveError as exc:
            return f"{item.sop_instance_uid}: {exc.message}"
        if sha != item.sha256 or size != item.size:
            return (
                f"{item.sop_instance_uid}: public blob has sha256 {sha} ({size} bytes), "
                f"{item.sha256} ({item.size} bytes) was written"
            )
        return None

    lines: list[str] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="promote-verify") as pool:
        for done, problem in enumerate(pool.map(check, items), start=1):
            if problem is not None:
                lines.append(problem)
            if progress is not None:
                progress(done)
    if lines:
        raise PromotionMismatch(_problems(lines, "public store does not hold what was written"))


def public_counts(session: Session, release_id: int, collection_id: int) -> Counts:
    """Catalogue rows of this release: instances whose sha256 is the one staged, and above."""
    query = (
        select(
            func.count(func.distinct(Patient.id)),
            func.count(func.distinct(Study.id)),
            func.count(func.distinct(Series.id)),
            func.count(func.distinct(Instance.id)),
        )
        .select_from(ReleaseItem)
        .join(
            Instance,
            (Instance.sop_instance_uid == ReleaseItem.sop_instance_uid)
            & (Instance.sha256 == ReleaseItem.sha256)
            & (Instance.blob_key == ReleaseItem.blob_key),
        )
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .where(
            ReleaseItem.release_id == release_id,
            Series.collection_id == collection_id,
            Patient.collection_id == collection_id,
        )
    )
    row = session.execute(query).one()
    return Counts(*(int(value) for value in row))


def compare_counts(expected: Counts, actual: Counts, left: str, right: str) -> None:
    """Raise :class:`PromotionMismatch` naming every count that differs."""
    lines = [
        f"{name}: {value} in {left}, {getattr(actual, name)} in {right}"
        for name, value in expected.to_dict().items()
        if getattr(actual, name) != value
    ]
    if lines:
        raise PromotionMismatch(_problems(lines, f"counts differ between {left} and {right}"))
