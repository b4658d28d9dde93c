"""Latency of the public search API on 1,000,000 instances in 20,000 series, SQLite and PostgreSQL.

Usage: python bench/search_bench.py [--instances N] [--series N] [--backends sqlite postgresql]
                                    [--rounds N] [--json FILE]

For each backend a public database is built with bulk inserts (rows generated
directly, no blobs) in ``--collections`` public collections plus one limited
collection, first at the schema *before* the search indexes (revision 0004, the
baseline measured in the same run), then migrated to head.  At each stage the
public app is served on loopback and sequential keep-alive requests measure
median and p95 of:

* a collection's series list (``/api/search?collection=C``, first page and a
  deep page), rotating over the collections;
* a faceted search (``/api/search?modality=M&facets=1``, and one with a
  description substring), rotating over modalities.

PostgreSQL is started from the test fixtures' service library in a temporary
folder and stopped at the end.  The goal is p95 under 100 ms on both.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.http import serve_app  # noqa: E402
from tests.fixtures.public_data import add_bulk_series  # noqa: E402

from dicomhub.context import PublicContext  # noqa: E402
from dicomhub.core.db import Access, make_engine  # noqa: E402
from dicomhub.core.db.migrate import upgrade  # noqa: E402
from dicomhub.settings import load_settings  # noqa: E402
from dicomhub.web.app import create_public_app  # noqa: E402

BASELINE_REVISION = "0004"
MODALITIES = ("CT", "MR", "PT")
DESCRIPTIONS = ("chest", "BRAIN", "series 12")


def build(db_url: str, instances: int, series: int, collections: int) -> None:
    """``collections`` public collections and one limited one, ``series`` series in all."""
    per_series = max(instances // series, 1)
    per_collection = series // (collections + 1)
    for n in range(collections):
        add_bulk_series(
            db_url, f"BENCH-{n:02d}", per_collection, series_per_patient=5,
            instances_per_series=per_series,
        )  # fmt: skip
    add_bulk_series(
        db_url, "BENCH-LIMITED", series - per_collection * collections, series_per_patient=5,
        instances_per_series=per_series, access=Access.LIMITED,
    )  # fmt: skip
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


Request = tuple[str, dict[str, str]]


def timed(client: httpx.Client, requests: Iterator[Request], rounds: int) -> dict[str, float]:
    """Median and p95 in ms of ``rounds`` sequential requests (after a few warm-ups)."""
    samples = []
    for n, (path, params) in enumerate(itertools.islice(requests, rounds + 5)):
        start = time.perf_counter()
        answer = client.get(path, params=params)
        took = (time.perf_counter() - start) * 1000
        answer.raise_for_status()
        if n >= 5:
            samples.append(took)
    samples.sort()
    return {
        "median": statistics.median(samples),
        "p95": samples[max(int(len(samples) * 0.95) - 1, 0)],
    }


def checks(collections: int) -> dict[str, Iterator[Request]]:
    names = [f"BENCH-{n:02d}" for n in range(collections)]
    return {
        "collection series list": (
            ("/api/search", {"collection": name, "limit": "50"}) for name in itertools.cycle(names)
        ),
        "collection series list, page 8": (
            ("/api/search", {"collection": name, "limit": "50", "offset": "400"})
            for name in itertools.cycle(names)
        ),
        "faceted search (modality)": (
            ("/api/search", {"modality": m, "facets": "1", "limit": "50"})
            for m in itertools.cycle(MODALITIES)
        ),
        "faceted search (description)": (
            ("/api/search", {"description": d, "facets": "1", "limit": "50"})
            for d in itertools.cycle(DESCRIPTIONS)
        ),
    }


def measure(db_url: str, folder: Path, rounds: int, collections: int) -> dict[str, Any]:
    """Serve the public app over ``db_url`` and time every check."""
    settings = load_settings(
        data_dir=folder,
        secret_key="b" * 32,
        public_database_url=db_url,
        public_store=(folder / "blobs").as_uri(),
    ).public()
    context = PublicContext.from_settings(settings)
    out = {}
    try:
        with (
            serve_app(create_public_app(settings, context)) as url,
            httpx.Client(base_url=url, timeout=600) as client,
        ):
            for name, requests in checks(collections).items():
                out[name] = timed(client, requests, rounds)
    finally:
        context.close()
    return out


@contextmanager
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL server with one empty database; yields its URL."""
    from tests.fixtures.servicelib import ENV_PG_URL, start_postgres

    handle = start_postgres()
    try:
        admin = handle.env[ENV_PG_URL]
        engine = make_engine(admin)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("CREATE DATABASE search_bench"))
        engine.dispose()
        yield admin.rsplit("/", 1)[0] + "/search_bench"
    finally:
        handle.stop()


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "postgresql":
        with postgres() as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'public.db'}"


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as db_url:
        folder = Path(tmp)
        upgrade(db_url, BASELINE_REVISION)
        began = time.perf_counter()
        build(db_url, args.instances, args.series, args.collections)
        print(f"{backend}: built {args.instances:,} instances in {args.series:,} series "
              f"in {time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
        before = measure(db_url, folder, args.rounds, args.collections)
        began = time.perf_counter()
        upgrade(db_url)
        print(f"{backend}: migrated to head in {time.perf_counter() - began:.1f} s", flush=True)
        after = measure(db_url, folder, args.rounds, args.collections)
    for name in before:
        b, a = before[name], after[name]
        print(
            f"{backend:10s} {name:32s} schema {BASELINE_REVISION}: p50 {b['median']:6.1f} "
            f"p95 {b['p95']:6.1f} ms | head: p50 {a['median']:6.1f} p95 {a['p95']:6.1f} ms "
            f"| p95 ratio {a['p95'] / b['p95']:.2f}"
        )
    return {"before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--collections", type=int, default=19)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for backend in args.backends:
        result = run_backend(backend, args)
        for name, stages in result["after"].items():
            key = f"{backend} {name}"
            figures[f"{key} p95 ms"] = round(stages["p95"], 1)
            figures[f"{key} p95 ratio"] = round(stages["p95"] / result["before"][name]["p95"], 3)
        figures[backend] = result
    worst = max(v for k, v in figures.items() if k.endswith("p95 ms"))
    figures = {"worst p95 ms": worst, "goal met": worst < 100, **figures}
    print(f"worst p95 at head: {worst:.1f} ms (goal < 100 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
