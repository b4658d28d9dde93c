"""Staging: one intake instance through the second pass into the public store.

Each instance is read from the intake store and checked against the sha256
intake recorded (bytes altered after ingest stop the release), de-identified
again, written to the public store under its content address, and described by
the DICOM JSON header of the bytes *written* (so the catalogue describes
exactly what is served).  The result is a :class:`~dicomhub.core.db.ReleaseItem`
row; rows are committed in batches so a killed promotion loses at most a batch.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom import dcmread

from dicomhub.core.db import session_scope
from dicomhub.core.deid import Deidentifier, Recipe
from dicomhub.core.dicom.header import UnreadableError, read_header
from dicomhub.core.dicom.index import index_record
from dicomhub.core.store.base import BlobStore, blob_key_for
from dicomhub.errors import StorageError
from dicomhub.promote.context import PromotionContext
from dicomhub.promote.plan import PlanItem
from dicomhub.promote.release import add_items
from dicomhub.promote.verify import PromotionMismatch

LOGGER = logging.getLogger(__name__)
#: Rows committed per batch, per worker thread: a kill loses at most one batch of work.
BATCH_PER_WORKER = 4


class SecondPass:
    """The compiled second-pass recipe, one engine per thread (engines keep caches)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self._local = threading.local()

    def engine(self) -> Deidentifier:
        engine: Deidentifier | None = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = Deidentifier(self.recipe)
        return engine

    def __call__(self, data: bytes) -> bytes:
        """De-identify one Part 10 file again and return the bytes to publish."""
        ds = dcmread(io.BytesIO(data))
        self.engine()(ds)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def read_intake(store: BlobStore, item: PlanItem) -> bytes:
    """The intake bytes of ``item``, refused if they are not the bytes intake recorded."""
    data = store.get(item.blob_key)
    sha = hashlib.sha256(data).hexdigest()
    if sha != item.sha256 or len(data) != item.size:
        raise PromotionMismatch(
            f"intake blob of {item.sop_instance_uid} has sha256 {sha} ({len(data)} bytes) but "
            f"intake recorded {item.sha256} ({item.size} bytes): it was altered after ingest"
        )
    return data


def stage_one(
    context: PromotionContext, second: SecondPass, release_id: int, item: PlanItem
) -> dict[str, Any]:
    """Promote one instance's bytes; the :class:`ReleaseItem` row to stage."""
    out = second(read_intake(context.intake_store, item))
    try:
        header = read_header(out)
    except UnreadableError as exc:
        raise PromotionMismatch(f"{item.sop_instance_uid}: second pass wrote {exc}") from exc
    json = header.to_json()
    record = index_record(json, header.transfer_syntax_uid)
    placed = (
        record.sop_instance_uid,
        record.series_instance_uid,
        record.study_instance_uid,
        record.patient_id,
    )
    planned = (
        item.sop_instance_uid,
        item.series_instance_uid,
        item.study_instance_uid,
        item.patient_id,
    )
    if placed != planned:
        raise PromotionMismatch(
            f"{item.sop_instance_uid}: the second pass changed its identifiers "
            f"(UIDs or PatientID); the recipe must retain them"
        )
    sha = hashlib.sha256(out).hexdigest()
    md5 = hashlib.md5(out, usedforsecurity=False).hexdigest()
    key = blob_key_for(sha)
    _put(context.public_store, key, out, sha)
    return {
        "release_id": release_id,
        "sop_instance_uid": item.sop_instance_uid,
        "series_instance_uid": item.series_instance_uid,
        "study_instance_uid": item.study_instance_uid,
        "patient_id": item.patient_id,
        "transfer_syntax_uid": header.transfer_syntax_uid[:64],
        "source_sha256": item.sha256,
        "sha256": sha,
        "md5": md5,
        "size": len(out),
        "blob_key": key,
        "header": json,
    }


def _put(store: BlobStore, key: str, data: bytes, sha: str) -> None:
    """Durable, atomic put, skipped when a blob of that content address and size exists."""
    if store.exists(key) and store.size(key) == len(data):
        return  # verification reads it back and compares its sha256 anyway
    try:
        info = store.put(key, data)
    except OSError as exc:
        raise StorageError(f"public blob store write failed: {exc}") from exc
    if info.sha256 != sha:
        raise StorageError(f"public blob store wrote other bytes for {key}")


def stage_all(
    context: PromotionContext,
    second: SecondPass,
    release_id: int,
    todo: Sequence[PlanItem],
    *,
    workers: int,
    progress: Callable[[int], None],
    between: Callable[[], None],
) -> None:
    """Stage ``todo`` on ``workers`` threads, committing each batch of rows.

    ``progress`` gets how many of ``todo`` are staged; ``between`` runs before
    each batch (the job's cancel check).
    """
    done = 0
    size = BATCH_PER_WORKER * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="promote") as pool:
        for start in range(0, len(todo), size):
            between()
            futures = [
                pool.submit(stage_one, context, second, release_id, item)
                for item in todo[start : start + size]
            ]
            rows: list[dict[str, Any]] = []
            error: BaseException | None = None
            for future in futures:
                try:
                    rows.append(future.result())
                except Exception as exc:
                    error = error or exc
            # Record what was written even when a sibling failed: a failed release then
            # withdraws every blob it wrote, and a resumed one does not redo them.
            with session_scope(context.public_db.sessions) as session:
                add_items(session, rows)
            if error is not None:
                raise error
            done += len(rows)
            progress(done)
