"""The real public app on loopback, seen through a request log that can also misbehave.

``RecordingApp`` wraps the real ASGI app: it counts every request (path and
SeriesInstanceUID, or the series of a bulk stream request), notes which image
answers were sent to their end, and, for the series a test names, answers
500, flips bytes in its files, or drops the connection, a given number of
times before behaving.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from sqlalchemy import insert

from dicomhub.context import PublicContext
from dicomhub.core.auth import create_token, create_user, grant_role, hash_password
from dicomhub.core.db import (
    Access,
    Collection,
    Instance,
    Patient,
    Series,
    Study,
    make_engine,
    make_sessionmaker,
    session_scope,
)
from dicomhub.core.store.base import blob_key_for
from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.settings import load_settings
from dicomhub.web.app import create_public_app
from tests.fixtures.http import free_port
from tests.fixtures.public_data import (
    BREAST,
    CT_IMAGE,
    PublicCatalogue,
    build_public_catalogue,
    make_uid,
    tiny_dicom,
)

IMAGE_PATHS = ("getImageWithMD5Hash", "getImage", "stream")
BULK = "stream"
BULK_STREAM = "/api/download/stream"
ALICE_PASSWORD = "alice-password-123"


@dataclass
class Fault:
    """Misbehave for one series: ``kind`` is ``500``, ``corrupt`` or ``drop``; ``times`` left."""

    kind: str
    times: int


@dataclass
class RecordingApp:
    """An ASGI wrapper that logs requests and injects faults."""

    app: Any
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    faults: dict[str, Fault] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def image_requests(self, uid: str) -> int:
        return sum(n for (path, u), n in self.requests.items() if u == uid and path in IMAGE_PATHS)

    def series_requested(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (path, uid), n in self.requests.items():
            if path in IMAGE_PATHS:
                out[uid] += n
        return out

    def _fault(self, uid: str) -> Fault | None:
        with self.lock:
            fault = self.faults.get(uid)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rsplit("/", 1)[-1]
        if scope["path"] == BULK_STREAM:
            await self._bulk(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        uid = (query.get("SeriesInstanceUID") or [""])[0]
        with self.lock:
            self.requests[(path, uid)] += 1
        fault = self._fault(uid) if path in IMAGE_PATHS and uid else None
        if fault is not None and fault.kind == "500":
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"Server was not able"})
            return
        sent = {"bytes": 0}

        async def watched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and fault is not None:
                body = message.get("body", b"")
                if fault.kind == "corrupt" and len(body) > 400:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                    message = {**message, "body": body}
                elif fault.kind == "drop" and sent["bytes"] + len(body) > 200:
                    await send({**message, "body": body[:100], "more_body": True})
                    raise ConnectionResetError("dropped on purpose")
                sent["bytes"] += len(body)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and path in IMAGE_PATHS:
                with self.lock:
                    self.completed[uid] += 1
            await send(message)

        await self.app(scope, receive, watched_send)

    async def _bulk(self, scope: Any, receive: Any, send: Any) -> None:
        """The bulk stream: every series of the request counts as asked for; faults per series.

        ``500`` answers the whole request with 500; ``corrupt`` flips a byte of the
        series' first file; ``drop`` cuts the connection where that series starts.
        """
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            uids = [str(u) for u in json.loads(body)["series"]]
        except (ValueError, KeyError, TypeError):
            uids = []
        with self.lock:
            for uid in uids:
                self.requests[(BULK, uid)] += 1
        faults = {uid: f for uid in uids if (f := self._fault(uid)) is not None}
        if any(f.kind == "500" for f in faults.values()):
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"Server was not able"})
            return
        marks = {f"{uid}/00000001.dcm".encode(): f.kind for uid, f in faults.items()}

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        async def watched_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                data = message.get("body", b"")
                for mark, kind in list(marks.items()):
                    at = data.find(mark)
                    if at < 0:
                        continue
                    if kind == "drop":
                        await send({**message, "body": data[:at], "more_body": True})
                        raise ConnectionResetError("dropped on purpose")
                    spot = at + 512 + 200
                    if spot < len(data):
                        data = data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1 :]
                        del marks[mark]
                message = {**message, "body": data}
                if not message.get("more_body"):
                    with self.lock:
                        for uid in uids:
                            self.completed[uid] += 1
            await send(message)

        await self.app(scope, replay, watched_send)


@dataclass
class Site:
    """A served public app over the test catalogue."""

    url: str
    db_url: str
    store: Path
    catalogue: PublicCatalogue
    recorder: RecordingApp
    alice_token: str
    bulk: list[str] = field(default_factory=list)


def add_bulk_with_blobs(
    db_url: str,
    store: Path,
    name: str,
    count: int,
    *,
    per_patient: int = 50,
    instances: int = 1,
    pixel_bytes: int = 0,
) -> list[str]:
    """``count`` series of ``instances`` real DICOM files each, by bulk insert.

    Files are the catalogue's tiny ones, or with ``pixel_bytes`` of pixel data
    (for benchmarks that need realistic sizes).
    """
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            collection = Collection(
                name=name, access=Access.PUBLIC, description="Bulk", license_name="CC BY 4.0"
            )
            session.add(collection)
            session.flush()
            patients = (count + per_patient - 1) // per_patient
            patient_ids = list(
                session.scalars(
                    insert(Patient).returning(Patient.id, sort_by_parameter_order=True),
                    [{"collection_id": collection.id, "patient_id": f"B-{p:05d}"}
                     for p in range(patients)],
                )
            )  # fmt: skip
            study_ids = list(
                session.scalars(
                    insert(Study).returning(Study.id, sort_by_parameter_order=True),
                    [{"patient_id": pk, "study_instance_uid": make_uid(name, "st", p),
                      "study_date": date(2016, 1, 1) + timedelta(days=p)}
                     for p, pk in enumerate(patient_ids)],
                )
            )  # fmt: skip
            uids, series_rows, blobs = [], [], []
            for n in range(count):
                uid = make_uid(name, "se", n)
                files = []
                for i in range(1, instances + 1):
                    sop = make_uid(uid, i)
                    header = {
                        "SeriesInstanceUID": uid,
                        "SOPInstanceUID": sop,
                        "Modality": "CT",
                        "PatientID": f"B-{n // per_patient:05d}",
                        "InstanceNumber": i,
                    }
                    data = _dicom(header, sop, pixel_bytes)
                    sha = hashlib.sha256(data).hexdigest()
                    key = blob_key_for(sha)
                    target = store / key
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    files.append((i, sop, len(data), sha, _md5(data), key))
                uids.append(uid)
                blobs.append(files)
                series_rows.append(
                    {"study_id": study_ids[n // per_patient], "collection_id": collection.id,
                     "series_instance_uid": uid, "series_number": n % per_patient + 1,
                     "modality": "CT", "body_part_examined": "CHEST", "sop_class_uid": CT_IMAGE,
                     "instance_count": instances, "total_size": sum(f[2] for f in files)}
                )  # fmt: skip
            series_ids = list(
                session.scalars(
                    insert(Series).returning(Series.id, sort_by_parameter_order=True), series_rows
                )
            )
            rows = [
                {"series_id": sid, "sop_instance_uid": sop, "sop_class_uid": CT_IMAGE,
                 "transfer_syntax_uid": ExplicitVRLittleEndian, "instance_number": i,
                 "size": size, "sha256": sha, "md5": md5, "blob_key": key, "header": {}}
                for sid, files in zip(series_ids, blobs, strict=True)
                for i, sop, size, sha, md5, key in files
            ]  # fmt: skip
            for start in range(0, len(rows), 5000):
                session.execute(insert(Instance), rows[start : start + 5000])
            session.commit()
            return uids
    finally:
        engine.dispose()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _dicom(header: dict[str, Any], sop: str, pixel_bytes: int) -> bytes:
    """The catalogue's tiny file, or one with ``pixel_bytes`` of 16-bit pixel data."""
    if pixel_bytes <= 32:
        return tiny_dicom(header, CT_IMAGE, sop)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE)
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.SOPClassUID = CT_IMAGE
    columns = 256
    ds.Rows, ds.Columns = max(1, pixel_bytes // (2 * columns)), columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = os.urandom(ds.Rows * columns * 2)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@functools.cache
def _alice_hash() -> str:
    return hash_password(ALICE_PASSWORD)  # argon2 is slow on purpose: once per process


def _accounts(context: PublicContext) -> str:
    secret = context.settings.secret_key
    with session_scope(context.db.sessions) as session:
        alice = create_user(session, "alice", actor="test", origin="test")
        alice.password_hash = _alice_hash()
        grant_role(session, alice, "user", actor="test", origin="test", collection=BREAST)
        _row, token = create_token(
            session, alice, "user", BREAST, secret_key=secret, actor="test", origin="test"
        )
    return token


@contextmanager
def serve_on(app: Any, port: int) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on ``port`` (the one its settings name)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def running_site(
    tmp_path: Path, sqlite_template: Path, *, bulk: int = 0, wrap: Any = None
) -> Iterator[Site]:
    """Migrate a SQLite database, write the catalogue (and ``bulk`` series), serve the app."""
    folder = tmp_path / "server"
    folder.mkdir()
    db_path = folder / "public.db"
    shutil.copyfile(sqlite_template, db_path)
    db_url = f"sqlite:///{db_path}"
    store = folder / "store"
    catalogue = build_public_catalogue(db_url, FilesystemStore(store))
    uids = add_bulk_with_blobs(db_url, store, "BULK-DEMO", bulk) if bulk else []
    port = free_port()
    settings = load_settings(
        data_dir=folder, secret_key="s" * 32, public_database_url=db_url,
        public_store=store.as_uri(), public_base_url=f"http://127.0.0.1:{port}",
    ).public()  # fmt: skip
    context = PublicContext.from_settings(settings)
    try:
        token = _accounts(context)
        recorder = RecordingApp(create_public_app(settings, context))
        app = wrap(recorder) if wrap is not None else recorder
        with serve_on(app, port) as url:
            yield Site(url, db_url, store, catalogue, recorder, token, uids)
    finally:
        context.close()
