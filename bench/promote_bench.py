"""Promotion throughput against the intake ingest rate, on the same corpus, in one run.

Usage: python bench/promote_bench.py [--patients N] [--clinical] [--rounds R]
                                     [--workers W] [--postgres ADMIN_URL]

Builds a synthetic sample (N fake patients; ``--clinical`` for 512x512 CT and other
clinical sizes), de-identifies it the way a site does (the submitter's worker, a test
kit and ID map), then, in each of R rounds on fresh databases and stores:

1. ingests every file through the intake service (one sender, as one STOW-RS request
   or one association would), timing instances/s;
2. promotes the collection on the job interface (in-process executor, W workers),
   timing instances/s from submit to the published release.

Rounds interleave ingest and promotion so both see the same machine state.  Prints
each round and the medians, and the ratio promotion / ingest (goal: at least 0.5).
Databases are SQLite files by default; ``--postgres`` creates (and drops) throw-away
databases on that server instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dicomhub.context import IntakeContext
from dicomhub.core.db import Access, Collection, Site
from dicomhub.core.db.intake import SitePolicy
from dicomhub.core.db.migrate import upgrade
from dicomhub.core.jobs import SUCCEEDED, InProcessExecutor, JobService
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import IntakeService
from dicomhub.promote import JOB_KIND, PromoteParams
from dicomhub.promote.context import promotion_env
from dicomhub.sample import make_sample
from dicomhub.settings import Settings, load_settings
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import KitBody, build_kit, load_kit, write_kit
from dicomhub.submit.worker import WorkerConfig, init_worker, process

COLLECTION, SITE = "BENCH", "S1"
SECRET = "promote bench archive secret key"
ROOT = "1.2.826.0.1.3680043.10.999"


def submitted_corpus(base: Path, patients: int, small: bool) -> tuple[list[Path], str, str]:
    """The sample, de-identified as a site sends it; (files, kit id, recipe hash)."""
    manifest = make_sample(base / "raw", patients=patients, seed=0, small=small)
    body: KitBody = build_kit(
        collection=COLLECTION,
        site=SITE,
        intake_url="https://127.0.0.1:9",
        credential="dh_bench.token",
        secret_key=SECRET,
        uid_root=ROOT,
        recipe={"retain_long_modified_dates": True},
    )
    kit = load_kit(write_kit(base / "kit.json", body, SECRET))
    rows = ["submitter_patient_id,archive_patient_id,archive_patient_name"]
    rows += [f"{p.patient_id},{COLLECTION}-{n:04d}," for n, p in enumerate(manifest.patients, 1)]
    (base / "map.csv").write_text("\n".join(rows) + "\n")
    idmap = load_idmap(base / "map.csv")
    out = base / "deid"
    init_worker(
        WorkerConfig(
            kit.recipe(), idmap.patients, kit.body.burned_in, str(out), "tree", COLLECTION, SITE
        )
    )
    for n, entry in enumerate(manifest.files):
        process(n, str(base / "raw" / entry.path))
    recipe = kit.recipe()
    return sorted(out.rglob("*.dcm")), recipe.kit_id, recipe.recipe_hash()


class Databases:
    """Fresh migrated databases: SQLite files, or throw-away PostgreSQL databases."""

    def __init__(self, base: Path, admin: str | None) -> None:
        self.base, self.admin = base, admin
        self.engine = create_engine(admin, isolation_level="AUTOCOMMIT") if admin else None
        self.made: list[str] = []

    def new(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        if self.engine is None:
            url = f"sqlite:///{self.base / (name + '.sqlite3')}"
        else:
            with self.engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            self.made.append(name)
            url = make_url(self.admin or "").set(database=name).render_as_string(False)
        upgrade(url)
        return url

    def drop_all(self) -> None:
        if self.engine is None:
            return
        with self.engine.connect() as connection:
            for name in self.made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


def fresh_settings(base: Path, databases: Databases, n: int) -> Settings:
    root = base / f"round-{n}"
    return load_settings(
        data_dir=root / "var",
        intake_database_url=databases.new(),
        public_database_url=databases.new(),
        intake_store=(root / "intake").as_uri(),
        public_store=(root / "public").as_uri(),
        secret_key=SECRET,
        uid_root=ROOT,
    )


def ingest(settings: Settings, files: list[Path], kit_id: str, recipe_hash: str) -> float:
    """Seconds to store every file through the intake service."""
    context = IntakeContext.from_settings(settings.intake())
    try:
        with context.db.sessions() as db, db.begin():
            collection = Collection(name=COLLECTION, access=Access.PUBLIC)
            db.add(collection)
            db.flush()
            db.add(Site(collection_id=collection.id, name=SITE))
            db.add(
                SitePolicy(collection=COLLECTION, site=SITE, kit_id=kit_id, recipe_hash=recipe_hash)
            )
        payloads = [path.read_bytes() for path in files]
        service = IntakeService(context)
        session = service.open_session(Origin("cli", "bench", "", COLLECTION, SITE))
        start = time.perf_counter()
        results = [service.store(session, data) for data in payloads]
        elapsed = time.perf_counter() - start
    finally:
        context.close()
    refused = [r.detail for r in results if not r.accepted]
    if refused:
        raise SystemExit(f"intake refused {len(refused)} files, e.g. {refused[0]}")
    return elapsed


def promote(settings: Settings, workers: int) -> tuple[float, int]:
    """Seconds from submitting the promotion job to its published release; instances."""
    os.environ["DICOMHUB_SECRET_KEY"] = SECRET  # job workers read it from their environment
    executor = InProcessExecutor(1)
    try:
        with JobService(settings.public_db, executor, env=promotion_env(settings)) as jobs:
            start = time.perf_counter()
            job_id = jobs.submit(JOB_KIND, PromoteParams(COLLECTION, workers=workers).to_dict())
            job = jobs.wait(job_id, poll=0.01)
            elapsed = time.perf_counter() - start
    finally:
        executor.close()
    if job.state != SUCCEEDED or job.result is None:
        raise SystemExit(f"promotion {job.state}: {job.error}")
    return elapsed, int(job.result["public_counts"]["instances"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--clinical", action="store_true", help="clinical image sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server to use")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="promote-bench-"))
    databases = Databases(base, args.postgres)
    try:
        files, kit_id, recipe_hash = submitted_corpus(base, args.patients, not args.clinical)
        size = sum(path.stat().st_size for path in files)
        print(
            f"corpus: {len(files)} de-identified instances, {size / 1e6:.1f} MB, "
            f"{'PostgreSQL' if args.postgres else 'SQLite'}, {args.workers} promotion workers"
        )
        ingest_rates, promote_rates = [], []
        for n in range(args.rounds):
            settings = fresh_settings(base, databases, n)
            ingested = ingest(settings, files, kit_id, recipe_hash)
            promoted, count = promote(settings, args.workers)
            assert count == len(files), (count, len(files))
            ingest_rates.append(len(files) / ingested)
            promote_rates.append(count / promoted)
            print(
                f"round {n + 1}: ingest {ingest_rates[-1]:7.1f} inst/s   "
                f"promote {promote_rates[-1]:7.1f} inst/s   "
                f"ratio {promote_rates[-1] / ingest_rates[-1]:.2f}"
            )
        ingest_rate = statistics.median(ingest_rates)
        promote_rate = statistics.median(promote_rates)
        ratio = promote_rate / ingest_rate
        print(
            f"median: ingest {ingest_rate:.1f} inst/s, promote {promote_rate:.1f} inst/s, "
            f"ratio {ratio:.2f} (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
        )
    finally:
        databases.drop_all()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
