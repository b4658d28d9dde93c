"""Promotion end to end on both databases: submitted sample → intake → public release."""

from __future__ import annotations

import hashlib
import io
import json

from pydicom import dcmread
from sqlalchemy import select

from dicomhub.core.db import (
    Access,
    AuditEvent,
    Collection,
    ReleaseItem,
    make_engine,
    make_sessionmaker,
)
from dicomhub.core.jobs import SUCCEEDED
from dicomhub.core.store.factory import make_store
from dicomhub.promote import PromoteParams
from dicomhub.promote.release import read_manifest
from tests.promote import helpers
from tests.promote.conftest import COLLECTION, Sides, Submitted, ingest, run_job


def test_promotion_publishes_every_accepted_instance(sides: Sides, submitted: Submitted) -> None:
    # One original (not de-identified) file is sent too: intake quarantines it.
    raw = (submitted.raw / submitted.manifest.files[0].path).read_bytes()
    results = ingest(sides, submitted, extra=[raw])
    assert [r.outcome.value for r in results].count("quarantined") == 1
    settings = sides.settings

    job = run_job(settings, PromoteParams(COLLECTION, actor="curator"))

    assert job.state == SUCCEEDED, job.error
    result = job.result or {}
    intake, public = helpers.counts(settings.intake_db), helpers.counts(settings.public_db)
    expected = {k: intake[k] for k in ("patients", "studies", "series", "instances")}
    assert expected["instances"] == len(submitted.files)
    assert result["intake_counts"] == expected
    assert result["public_counts"] == expected
    assert {k: public[k] for k in expected} == expected
    assert public["collections"] == 1
    # Same instances on both sides; each public row's hashes are those of the stored bytes.
    before, after = helpers.instances(settings.intake_db), helpers.instances(settings.public_db)
    assert before.keys() == after.keys()
    store = make_store(settings.public_store_url, settings.s3)
    stored = helpers.store_hashes(store, [row["key"] for row in after.values()])
    for row in after.values():
        assert stored[row["key"]] == (row["sha256"], row["md5"])
        assert row["key"].endswith(f"{row['sha256']}.dcm")
    assert all(
        rec == act and size == act_size
        for rec, act, size, act_size in helpers.series_totals(settings.public_db).values()
    )
    # The release, its manifest (served from the public store) and the audit record.
    [release] = helpers.releases(settings.public_db)
    assert (release.state, release.created_by, release.instances) == (
        "published",
        "curator",
        len(after),
    )
    assert release.id == result["release_id"]
    manifest_bytes = store.get(release.manifest_key)
    assert hashlib.sha256(manifest_bytes).hexdigest() == release.manifest_sha256
    manifest = read_manifest(store, release.manifest_key)
    assert manifest["counts"] == expected
    assert {i["sop_instance_uid"]: i["sha256"] for i in manifest["instances"]} == {
        uid: row["sha256"] for uid, row in after.items()
    }
    assert json.loads(manifest_bytes)["recipe_hash"] == release.recipe_hash
    engine = make_engine(settings.public_db)
    try:
        with make_sessionmaker(engine)() as db:
            collection = db.scalars(select(Collection)).one()
            assert collection.access is Access.LIMITED
            assert collection.license_name == "CC BY 4.0"
            assert collection.description.startswith("Chest CT")
            headers = list(db.scalars(select(ReleaseItem.header)))
            assert headers == [None] * len(after)  # copied to the catalogue, then dropped
            [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "release.publish"))
            assert event.actor == "curator"
    finally:
        engine.dispose()
    # The submitter's UIDs are kept; no planted PHI string is in any public blob.
    assert helpers.phi_leaks(store, submitted.manifest) == []
    first = dcmread(io.BytesIO(store.get(next(iter(after.values()))["key"])))
    assert first.PatientIdentityRemoved == "YES"
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"


def test_running_again_changes_nothing(ingested: Sides) -> None:
    settings = ingested.settings
    first = run_job(settings, PromoteParams(COLLECTION))
    before = helpers.instances(settings.public_db)
    second = run_job(settings, PromoteParams(COLLECTION))
    assert (first.state, second.state) == (SUCCEEDED, SUCCEEDED)
    assert (second.result or {})["opened"] == "unchanged"
    assert (second.result or {})["release_id"] == (first.result or {})["release_id"]
    assert helpers.instances(settings.public_db) == before
    assert len(helpers.releases(settings.public_db)) == 1


def test_series_then_whole_collection(ingested: Sides) -> None:
    settings = ingested.settings
    intake = helpers.instances(settings.intake_db)
    chosen = sorted({row["series"] for row in intake.values()})[:2]
    part = run_job(settings, PromoteParams(COLLECTION, series=tuple(chosen)))
    assert part.state == SUCCEEDED, part.error
    published = helpers.instances(settings.public_db)
    assert {row["series"] for row in published.values()} == set(chosen)
    assert len(published) == sum(row["series"] in chosen for row in intake.values())
    whole = run_job(settings, PromoteParams(COLLECTION))
    assert whole.state == SUCCEEDED, whole.error
    after = helpers.instances(settings.public_db)
    assert after.keys() == intake.keys()
    assert {uid: after[uid]["sha256"] for uid in published} == {
        uid: row["sha256"] for uid, row in published.items()
    }
    assert helpers.counts(settings.public_db)["collections"] == 1
    assert [r.state for r in helpers.releases(settings.public_db)] == ["published", "published"]
