"""A promotion killed half-way (a real process, SIGKILL) and run again finishes the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from dicomhub.core.jobs import SUCCEEDED
from dicomhub.core.store.factory import make_store
from dicomhub.promote import PromoteParams
from dicomhub.promote.release import read_manifest
from dicomhub.settings import Settings
from tests.promote import helpers
from tests.promote.conftest import COLLECTION, SECRET, DbFactory, Sides, make_settings, run_job
from tests.promote.test_failures import NOTHING, staged_count


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    env.update(
        DICOMHUB_DATA_DIR=str(settings.resolved_data_dir),
        DICOMHUB_INTAKE_DATABASE_URL=settings.intake_db,
        DICOMHUB_PUBLIC_DATABASE_URL=settings.public_db,
        DICOMHUB_INTAKE_STORE=settings.intake_store_url,
        DICOMHUB_PUBLIC_STORE=settings.public_store_url,
        DICOMHUB_SECRET_KEY=SECRET,
        DICOMHUB_UID_ROOT=settings.uid_root or "",
        COLUMNS="120",
    )
    return env


def kill_half_way(settings: Settings, total: int) -> int:
    """Start ``dicomhub promote`` and SIGKILL it once part of the release is staged."""
    command = [sys.executable, "-m", "dicomhub", "promote", "--collection", COLLECTION,
               "--workers", "1", "--executor", "inprocess"]  # fmt: skip
    process = subprocess.Popen(
        command, env=cli_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        staged = 0
        while staged < 8:
            assert process.poll() is None, "the promotion ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
            staged = staged_count(settings.public_db)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return staged


def test_killed_promotion_resumes_to_the_same_release(ingested: Sides, new_db: DbFactory) -> None:
    settings = ingested.settings
    total = helpers.counts(settings.intake_db)["instances"]

    staged = kill_half_way(settings, total)

    assert 8 <= staged < total
    assert helpers.counts(settings.public_db) == NOTHING  # nothing half-published
    [killed] = helpers.releases(settings.public_db)
    assert killed.state == "staging"
    job = run_job(settings, PromoteParams(COLLECTION))
    assert job.state == SUCCEEDED, job.error
    assert (job.result or {})["opened"] == "resumed"
    assert (job.result or {})["release_id"] == killed.id
    [release] = helpers.releases(settings.public_db)
    assert release.state == "published"
    assert staged_count(settings.public_db) == total  # every item once
    public = helpers.counts(settings.public_db)
    intake = helpers.counts(settings.intake_db)
    assert public == intake
    # The same result as a promotion that was never interrupted.
    reference = make_settings(ingested.root, settings.intake_db, new_db(), "public-reference")
    clean = run_job(reference, PromoteParams(COLLECTION))
    assert clean.state == SUCCEEDED, clean.error
    resumed_rows = helpers.instances(settings.public_db)
    clean_rows = helpers.instances(reference.public_db)
    assert {k: v["sha256"] for k, v in resumed_rows.items()} == {
        k: v["sha256"] for k, v in clean_rows.items()
    }
    store = make_store(settings.public_store_url, settings.s3)
    reference_store = make_store(reference.public_store_url, reference.s3)
    [ref_release] = helpers.releases(reference.public_db)
    assert (
        read_manifest(store, release.manifest_key)["instances"]
        == read_manifest(reference_store, ref_release.manifest_key)["instances"]
    )
    # No blob beyond the release's instances and its manifest.
    keys = set(store.keys(""))
    assert keys == {row["key"] for row in resumed_rows.values()} | {release.manifest_key}
