"""Two databases per test (intake and public) on each backend, and a submitted sample.

The synthetic sample is PHI-laden, so it is first de-identified the way a site
does it (the submitter's worker under a test kit and ID map), then ingested
through the intake service, exactly as a STOW or C-STORE would store it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomhub.context import IntakeContext
from dicomhub.core.db import Access, Collection, Site
from dicomhub.core.db.intake import SitePolicy
from dicomhub.core.jobs import InProcessExecutor, JobInfo, JobService
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import IntakeService, StoreResult
from dicomhub.promote import JOB_KIND, PromoteParams
from dicomhub.promote.context import PromotionContext, promotion_env
from dicomhub.sample import SampleManifest, make_sample
from dicomhub.settings import Settings, load_settings
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.worker import WorkerConfig, init_worker, process
from tests.fixtures.db import PgDatabases
from tests.submit.helpers import ROOT, write_idmap, write_test_kit

COLLECTION = "LUNG1"
SITE = "S1"
SECRET = "promote-test-secret-0123456789"
ORIGIN = Origin("cli", "tester", "", COLLECTION, SITE)


@dataclass(frozen=True)
class Submitted:
    """The sample as a site sends it: de-identified files, and what was planted in them."""

    raw: Path
    files: list[Path]
    manifest: SampleManifest
    kit_id: str
    recipe_hash: str


@pytest.fixture(scope="session")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    base = tmp_path_factory.mktemp("promote-sample")
    manifest = make_sample(base / "raw", patients=2, seed=0, small=True)
    kit = load_kit(write_test_kit(base / "kit.json", recipe={"retain_long_modified_dates": True}))
    idmap = load_idmap(write_idmap(base / "map.csv", manifest, collection=COLLECTION, site=SITE))
    out = base / "deid"
    config = WorkerConfig(
        kit.recipe(), idmap.patients, kit.body.burned_in, str(out), "tree", COLLECTION, SITE
    )
    init_worker(config)
    stages = [
        process(n, str(base / "raw" / f.path)).outcome.stage for n, f in enumerate(manifest.files)
    ]
    # Burned-in US and secondary captures stay at the site (two per patient).
    assert stages.count("deidentified") >= len(manifest.files) - 2 * len(manifest.patients)
    files = sorted(p for p in out.rglob("*.dcm") if p.is_file())
    recipe = kit.recipe()
    return Submitted(base / "raw", files, manifest, recipe.kit_id, recipe.recipe_hash())


@dataclass
class Sides:
    """An archive with separate intake and public databases and stores."""

    settings: Settings
    root: Path

    def promotion(self) -> PromotionContext:
        return PromotionContext.from_settings(self.settings)

    def intake(self) -> IntakeContext:
        return IntakeContext.from_settings(self.settings.intake())


DbFactory = Callable[[], str]


@pytest.fixture
def new_db(db_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbFactory]:
    """Makes migrated databases of this test's backend (dropped afterwards)."""
    made: list[str] = []
    databases: PgDatabases | None = None

    def make() -> str:
        nonlocal databases
        if db_backend == "sqlite":
            template: Path = request.getfixturevalue("sqlite_template")
            path = tmp_path / f"db{len(made)}.sqlite3"
            shutil.copyfile(template, path)
            made.append(str(path))
            return f"sqlite:///{path}"
        databases = request.getfixturevalue("pg_databases")
        name = databases.create(template=request.getfixturevalue("pg_template"))
        made.append(name)
        return databases.url_for(name)

    yield make
    if databases is not None:
        for name in made:
            databases.drop(name)


def make_settings(
    root: Path, intake_url: str, public_url: str, public_store: str = "public"
) -> Settings:
    return load_settings(
        data_dir=root / "var",
        intake_database_url=intake_url,
        public_database_url=public_url,
        intake_store=(root / "intake-store").as_uri(),
        public_store=(root / public_store).as_uri(),
        secret_key=SECRET,
        uid_root=ROOT,
    )


@pytest.fixture
def sides(new_db: DbFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sides:
    """Intake on one database, public on another; the intake collection registered.

    Job workers read the instance secret from their own environment, never from
    the job's env, so it is set there.
    """
    monkeypatch.setenv("DICOMHUB_SECRET_KEY", SECRET)
    sides = Sides(make_settings(tmp_path, new_db(), new_db()), tmp_path)
    return sides


def register(context: IntakeContext, submitted: Submitted) -> None:
    with context.db.sessions() as db, db.begin():
        collection = Collection(
            name=COLLECTION,
            description="Chest CT and more, for testing promotion.",
            access=Access.LIMITED,
            license_name="CC BY 4.0",
            license_url="https://creativecommons.org/licenses/by/4.0/",
            citation="Example (2026) LUNG1.",
            doi="https://doi.org/10.0000/lung1",
        )
        db.add(collection)
        db.flush()
        db.add(Site(collection_id=collection.id, name=SITE))
        db.add(
            SitePolicy(
                collection=COLLECTION,
                site=SITE,
                require_deid_provenance=True,
                kit_id=submitted.kit_id,
                recipe_hash=submitted.recipe_hash,
            )
        )


def ingest(
    sides: Sides, submitted: Submitted, extra: list[bytes] | None = None
) -> list[StoreResult]:
    """Register the collection and store every submitted file through the intake service."""
    context = sides.intake()
    try:
        register(context, submitted)
        service = IntakeService(context)
        session = service.open_session(ORIGIN)
        results = [service.store(session, path.read_bytes()) for path in submitted.files]
        results += [service.store(session, data) for data in extra or []]
    finally:
        context.close()
    return results


@pytest.fixture
def ingested(sides: Sides, submitted: Submitted) -> Sides:
    results = ingest(sides, submitted)
    assert all(r.accepted for r in results), [r.detail for r in results if not r.accepted]
    return sides


def run_job(settings: Settings, params: PromoteParams, executor: object | None = None) -> JobInfo:
    """Submit a promotion on the job interface and wait for it."""
    runner = executor if executor is not None else InProcessExecutor(2)
    try:
        with JobService(settings.public_db, runner, env=promotion_env(settings)) as jobs:  # type: ignore[arg-type]
            return jobs.wait(
                jobs.submit(JOB_KIND, params.to_dict(), created_by="tester"), timeout=300
            )
    finally:
        if executor is None:
            runner.close()  # type: ignore[attr-defined]
