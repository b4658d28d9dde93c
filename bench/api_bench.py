"""Latency of the standard APIs on a large generated public database, and getImage throughput.

Usage: python bench/api_bench.py [--instances N] [--database URL]

Builds a migrated public database (SQLite in a temp dir unless ``--database``
names an empty PostgreSQL one) holding N instances (default 1,000,000) in 40
collections, plus one 500-instance series with real blobs, serves the public
app on loopback and reports:

* p50/p95 of v4 ``getSeries?Collection=`` (one collection) and of QIDO-RS
  ``/dicomweb/series`` searches, over sequential keep-alive requests;
* the rate of v4 ``getImage`` for the 500-instance series, against serving the
  same ZIP bytes as a static file from the same server stack, and the
  server's peak memory growth while streaming.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.http import serve_app  # noqa: E402
from tests.fixtures.public_data import CT_IMAGE, add_bulk_series, make_uid  # noqa: E402

from dicomhub.context import PublicContext  # noqa: E402
from dicomhub.core.db import (  # noqa: E402  # noqa: E402
    Collection,
    Instance,
    Patient,
    Series,
    Study,
    make_engine,
    make_sessionmaker,
)
from dicomhub.core.db.migrate import upgrade  # noqa: E402
from dicomhub.core.store.base import blob_key_for  # noqa: E402
from dicomhub.core.store.filesystem import FilesystemStore  # noqa: E402
from dicomhub.settings import load_settings  # noqa: E402
from dicomhub.web.app import create_public_app  # noqa: E402

COLLECTIONS = 40
PER_SERIES = 40
ROUNDS = 200
IMAGE_COUNT = 500
IMAGE_SIZE = 256 * 1024


def build(db_url: str, instances: int) -> None:
    series_total = max(instances // PER_SERIES, COLLECTIONS)
    per_collection = series_total // COLLECTIONS
    for n in range(COLLECTIONS):
        add_bulk_series(
            db_url,
            f"BENCH-{n:02d}",
            per_collection,
            series_per_patient=5,
            instances_per_series=PER_SERIES,
        )


def image_series(db_url: str, store: FilesystemStore) -> str:
    """One series of IMAGE_COUNT real blobs; returns its UID."""
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            collection = Collection(name="BENCH-IMAGES", license_name="CC BY 4.0")
            session.add(collection)
            session.flush()
            patient = Patient(collection_id=collection.id, patient_id="IMG-1")
            session.add(patient)
            session.flush()
            study = Study(patient_id=patient.id, study_instance_uid=make_uid("img", "study"))
            session.add(study)
            session.flush()
            uid = make_uid("img", "series")
            series = Series(
                study_id=study.id,
                collection_id=collection.id,
                series_instance_uid=uid,
                modality="CT",
                instance_count=IMAGE_COUNT,
                total_size=IMAGE_COUNT * IMAGE_SIZE,
            )
            session.add(series)
            session.flush()
            rows = []
            for i in range(IMAGE_COUNT):
                data = os.urandom(IMAGE_SIZE)
                sha = hashlib.sha256(data).hexdigest()
                key = blob_key_for(sha)
                store.put(key, data)
                rows.append(
                    {
                        "series_id": series.id,
                        "sop_instance_uid": make_uid(uid, i),
                        "sop_class_uid": CT_IMAGE,
                        "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                        "instance_number": i + 1,
                        "size": IMAGE_SIZE,
                        "sha256": sha,
                        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                        "blob_key": key,
                        "header": {},
                    }
                )
            session.execute(insert(Instance), rows)
            session.commit()
            return uid
    finally:
        engine.dispose()


def latencies(
    client: httpx.Client, path: str, params: dict[str, str], static: httpx.Client, folder: Path
) -> tuple[list[float], list[float], int]:
    """Endpoint and static-file samples (ms), interleaved so both see the same machine load.

    The baseline is the endpoint's own answer served as a static file by the same
    server stack (Starlette on uvicorn), so the ratio is the cost of the query
    and its serialization alone; on a busy machine the absolute figures drift,
    the ratio much less.
    """
    body = client.get(path, params=params)
    body.raise_for_status()
    name = f"answer-{abs(hash((path, tuple(params.items()))))}.json"
    (folder / name).write_bytes(body.content)
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        ours.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        static.get(f"/static/{name}").raise_for_status()
        baseline.append((time.perf_counter() - start) * 1000)
    return sorted(ours), sorted(baseline), len(body.content)


def _p(samples: list[float], q: float) -> float:
    return samples[max(0, int(len(samples) * q) - 1)]


def download(client: httpx.Client, url: str) -> tuple[float, int]:
    start = time.perf_counter()
    total = 0
    with client.stream("GET", url) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_raw():
            total += len(chunk)
    return time.perf_counter() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--database", default=None)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the database and blobs here and reuse them on the next run "
        "(compare code changes on the same data; building 1M instances takes minutes)",
    )
    parser.add_argument("--latency-only", action="store_true", help="skip the getImage part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db_url = args.database or f"sqlite:///{folder / 'public.db'}"
        store = FilesystemStore(folder / "blobs")
        uid = make_uid("img", "series")
        if not _built(db_url):
            upgrade(db_url)
            began = time.perf_counter()
            build(db_url, args.instances)
            uid = image_series(db_url, store)
            took = time.perf_counter() - began
            print(f"built {args.instances:,} instances in {took:.0f} s ({db_url.split(':')[0]})")
        settings = load_settings(
            data_dir=folder,
            secret_key="b" * 32,
            public_database_url=db_url,
            public_store=store.root.as_uri(),
        ).public()
        context = PublicContext.from_settings(settings)
        try:
            with serve_app(create_public_app(settings, context)) as url:
                report(url, uid, folder, images=not args.latency_only)
        finally:
            context.close()


def _built(db_url: str) -> bool:
    """Whether ``db_url`` already holds a complete bench catalogue (from ``--workdir``)."""
    from sqlalchemy import inspect, select

    engine = make_engine(db_url)
    try:
        if "series" not in inspect(engine).get_table_names():
            return False
        with make_sessionmaker(engine)() as session:
            found = session.scalar(
                select(Series.id).where(Series.series_instance_uid == make_uid("img", "series"))
            )
            return found is not None
    finally:
        engine.dispose()


def report(url: str, uid: str, folder: Path, *, images: bool = True) -> None:
    with httpx.Client(base_url=url, timeout=600) as client:
        checks = [
            (
                "v4 getSeries (one collection)",
                "/nbia-api/services/v4/getSeries",
                {"Collection": "BENCH-07"},
            ),
            (
                "v4 getSeries (collection + modality)",
                "/nbia-api/services/v4/getSeries",
                {"Collection": "BENCH-07", "Modality": "MR"},
            ),
            (
                "QIDO /series?Modality=CT&limit=100",
                "/dicomweb/series",
                {"Modality": "CT", "limit": "100"},
            ),
            (
                "QIDO /series?PatientID=BULK-000003",
                "/dicomweb/series",
                {"PatientID": "BULK-000003"},
            ),
            (
                "QIDO /studies?StudyDate=range&limit=50",
                "/dicomweb/studies",
                {"StudyDate": "20150101-20150105", "limit": "50"},
            ),
        ]
        static_dir = folder / "answers"
        static_dir.mkdir(exist_ok=True)
        with _static_server(static_dir) as static:
            for name, path, params in checks:
                ours, base, size = latencies(client, path, params, static, static_dir)
                p50, p95 = statistics.median(ours), _p(ours, 0.95)
                b50, b95 = statistics.median(base), _p(base, 0.95)
                print(
                    f"{name:42s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  ({size:,} bytes); "
                    f"same bytes static p50 {b50:5.1f} p95 {b95:5.1f} ms; "
                    f"ratio p50 {p50 / b50:4.1f}x p95 {p95 / b95:4.1f}x"
                )
        if not images:
            return
        image_url = f"/nbia-api/services/v4/getImage?SeriesInstanceUID={uid}&NewFileNames=Yes"
        zip_path = folder / "static" / "series.zip"
        zip_path.parent.mkdir(exist_ok=True)
        zip_path.write_bytes(client.get(image_url).content)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        dynamic = min(download(client, image_url)[0] for _ in range(3))
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = zip_path.stat().st_size
    static_seconds = static_time(zip_path)
    print(
        f"getImage {size / 1e6:.0f} MB: {size / dynamic / 1e6:.0f} MB/s; static file "
        f"{size / static_seconds / 1e6:.0f} MB/s; ratio {static_seconds / dynamic:.0%}; "
        f"peak RSS growth {(rss_after - rss_before) / 1024:.0f} MB"
    )


@contextmanager
def _static_server(folder: Path) -> Iterator[httpx.Client]:
    """A Starlette static-file server on loopback over ``folder``, as a keep-alive client."""
    from starlette.applications import Starlette
    from starlette.staticfiles import StaticFiles

    app = Starlette()
    app.mount("/static", StaticFiles(directory=folder))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=600) as client:
        yield client


def static_time(path: Path) -> float:
    from starlette.applications import Starlette
    from starlette.staticfiles import StaticFiles

    app = Starlette()
    app.mount("/static", StaticFiles(directory=path.parent))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=600) as client:
        return min(download(client, f"/static/{path.name}")[0] for _ in range(3))


if __name__ == "__main__":
    main()
