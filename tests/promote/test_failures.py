"""A promotion that finds a difference stops, says so and publishes nothing of it."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from dicomhub.core.db import ReleaseItem, make_engine, make_sessionmaker
from dicomhub.core.jobs import FAILED, SUCCEEDED
from dicomhub.core.store.factory import make_store
from dicomhub.errors import BadRequest, NotFound
from dicomhub.promote import PromoteParams, parse_params
from dicomhub.promote.verify import PromotionMismatch
from dicomhub.promote.worker import run_promotion
from tests.promote import helpers
from tests.promote.conftest import COLLECTION, Sides, Submitted, ingest, run_job

NOTHING = {"collections": 0, "patients": 0, "studies": 0, "series": 0, "instances": 0}


def staged_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as db:
            return int(db.scalar(select(func.count()).select_from(ReleaseItem)) or 0)
    finally:
        engine.dispose()


def public_blobs(sides: Sides) -> list[str]:
    store = make_store(sides.settings.public_store_url, sides.settings.s3)
    return sorted(store.keys(""))


def assert_nothing_published(sides: Sides) -> None:
    assert helpers.counts(sides.settings.public_db) == NOTHING
    assert public_blobs(sides) == []
    assert staged_count(sides.settings.public_db) == 0


def test_intake_blob_altered_after_ingest(ingested: Sides) -> None:
    settings = ingested.settings
    [(uid, row)] = list(helpers.instances(settings.intake_db).items())[5:6]
    path = ingested.root / "intake-store" / row["key"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one pixel byte: still a valid file, no longer the ingested one
    path.write_bytes(bytes(data))

    job = run_job(settings, PromoteParams(COLLECTION))

    assert job.state == FAILED
    assert job.error is not None
    assert "PromotionMismatch" in job.error
    assert uid in job.error
    assert "altered after ingest" in job.error
    [release] = helpers.releases(settings.public_db)
    assert release.state == "failed"
    assert release.error
    assert uid in release.error
    assert_nothing_published(ingested)


def test_public_blob_changed_before_verification(ingested: Sides) -> None:
    settings = ingested.settings
    total = helpers.counts(settings.intake_db)["instances"]
    tampered: list[str] = []

    def between() -> None:
        if tampered or staged_count(settings.public_db) < total:
            return
        store = make_store(settings.public_store_url, settings.s3)
        key = sorted(store.keys(""))[3]
        data = store.get(key)
        store.put(key, data[:-2] + bytes(b ^ 0xFF for b in data[-2:]))  # a write gone wrong
        tampered.append(key)

    context = ingested.promotion()
    try:
        with pytest.raises(PromotionMismatch, match="public store does not hold what was written"):
            run_promotion(context, PromoteParams(COLLECTION), between=between)
    finally:
        context.close()
    assert tampered
    [release] = helpers.releases(settings.public_db)
    assert release.state == "failed"
    assert_nothing_published(ingested)


def test_intake_changing_during_promotion_stops_it(ingested: Sides, submitted: Submitted) -> None:
    settings = ingested.settings
    total = helpers.counts(settings.intake_db)["instances"]
    extra = dcmread(submitted.files[0])
    head, tail = str(extra.SOPInstanceUID).rsplit(".", 1)
    extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = f"{head}.{'9' * len(tail)}"
    added: list[bool] = []

    def between() -> None:
        if added or staged_count(settings.public_db) < total:
            return
        path = ingested.root / "late.dcm"
        extra.save_as(path, enforce_file_format=True)
        from dicomhub.intake.service import IntakeService
        from tests.promote.conftest import ORIGIN

        context = ingested.intake()
        try:
            service = IntakeService(context)
            assert service.store(service.open_session(ORIGIN), path.read_bytes()).accepted
        finally:
            context.close()
        added.append(True)

    context = ingested.promotion()
    try:
        with pytest.raises(PromotionMismatch, match="changed during the promotion"):
            run_promotion(context, PromoteParams(COLLECTION), between=between)
        assert_nothing_published(ingested)
        # Run again: a new release of what intake holds now.
        result = run_promotion(context, PromoteParams(COLLECTION))
    finally:
        context.close()
    assert result["public_counts"]["instances"] == total + 1
    assert [r.state for r in helpers.releases(settings.public_db)] == ["failed", "published"]


def test_public_store_failing_stops_and_resumes(ingested: Sides) -> None:
    settings = ingested.settings
    root = ingested.root / "public"
    root.mkdir(exist_ok=True)
    # A file where each two-digit fan-out directory must go: every blob write fails.
    blockers = [root / f"{n:02x}" for n in range(256)]
    for path in blockers:
        path.write_bytes(b"")

    job = run_job(settings, PromoteParams(COLLECTION))

    assert job.state == FAILED
    assert job.error is not None
    assert job.error.startswith("StorageError")
    assert helpers.counts(settings.public_db) == NOTHING
    [release] = helpers.releases(settings.public_db)
    assert release.state == "staging"
    assert (release.error or "").startswith("stopped:")
    for path in blockers:
        path.unlink()
    again = run_job(settings, PromoteParams(COLLECTION))
    assert again.state == SUCCEEDED, again.error
    assert (again.result or {})["opened"] == "resumed"
    assert (again.result or {})["release_id"] == release.id
    assert (
        helpers.counts(settings.public_db)["instances"]
        == helpers.counts(settings.intake_db)["instances"]
    )


def test_uid_published_in_another_collection_publishes_nothing(
    sides: Sides, submitted: Submitted
) -> None:
    ingest(sides, submitted)
    settings = sides.settings
    context = sides.promotion()
    try:
        run_promotion(context, PromoteParams(COLLECTION))
        # The same UIDs arrive in intake under another collection.
        from dicomhub.core.db import Collection, Patient

        with context.intake_db.sessions() as db, db.begin():
            db.add(Collection(name="OTHER"))
            db.flush()
            other = db.scalar(select(Collection.id).where(Collection.name == "OTHER"))
            for patient in db.scalars(select(Patient)):
                patient.collection_id = other
            from dicomhub.core.db import Series

            for series in db.scalars(select(Series)):
                series.collection_id = other
        before = helpers.counts(settings.public_db)
        from dicomhub.errors import Conflict

        with pytest.raises(Conflict, match="already published in another collection"):
            run_promotion(context, PromoteParams("OTHER"))
    finally:
        context.close()
    assert helpers.counts(settings.public_db) == before


def test_held_duplicates_are_left_out(sides: Sides, submitted: Submitted) -> None:
    conflicting = dcmread(submitted.files[0])
    conflicting.PatientID = "LUNG1-S1-9999"
    path = sides.root / "conflict.dcm"
    conflicting.save_as(path, enforce_file_format=True)
    results = ingest(sides, submitted, extra=[path.read_bytes()])
    assert results[-1].reason == "patient_conflict"
    job = run_job(sides.settings, PromoteParams(COLLECTION))
    assert job.state == SUCCEEDED, job.error
    assert (job.result or {})["held_back"] == 1
    published = helpers.instances(sides.settings.public_db)
    assert str(conflicting.SOPInstanceUID) not in published
    assert len(published) == len(submitted.files) - 1


def test_unknown_collection_and_series(ingested: Sides) -> None:
    context = ingested.promotion()
    try:
        with pytest.raises(NotFound, match="no collection named 'NOPE'"):
            run_promotion(context, PromoteParams("NOPE"))
        with pytest.raises(NotFound, match=r"series not in intake collection 'LUNG1': 1\.2\.3\.4"):
            run_promotion(context, PromoteParams(COLLECTION, series=("1.2.3.4",)))
    finally:
        context.close()
    assert helpers.releases(ingested.settings.public_db) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "collection must be"),
        ({"collection": ""}, "collection must be"),
        ({"collection": "C", "series": "1.2.3"}, "series must be a list"),
        ({"collection": "C", "series": ["1.2.3'; DROP TABLE series;--"]}, "not a valid UID"),
        ({"collection": "C", "series": ["../../etc/passwd"]}, "not a valid UID"),
        ({"collection": "C", "series": ["1." + "2" * 80]}, "not a valid UID"),
        ({"collection": "C", "workers": 0}, "between 1 and"),
        ({"collection": "C", "workers": True}, "must be an integer"),
        ({"collection": "C", "bogus": 1}, "unknown parameters bogus"),
    ],
)
def test_bad_parameters_are_refused_before_queueing(
    params: dict[str, object], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_params(params)


def test_a_curated_recipe_must_keep_uids(ingested: Sides) -> None:
    toml = 'kit_id = "curated"\nuid_root = "1.2.3"\nretain_uids = false\n'
    context = ingested.promotion()
    try:
        with pytest.raises(BadRequest, match="must retain UIDs"):
            run_promotion(context, PromoteParams(COLLECTION, recipe_toml=toml))
    finally:
        context.close()


class Stop(Exception):
    """Stands for a promotion stopped half-way (cancelled, or its worker lost)."""


def test_a_stopped_release_is_superseded_when_intake_changes(
    ingested: Sides, submitted: Submitted
) -> None:
    settings = ingested.settings

    def stop_after_first_batch() -> None:
        if staged_count(settings.public_db) > 0:
            raise Stop

    context = ingested.promotion()
    try:
        with pytest.raises(Stop):
            run_promotion(context, PromoteParams(COLLECTION), between=stop_after_first_batch)
        assert public_blobs(ingested) != []
        # Intake changes (one instance more) before the promotion is run again.
        extra = dcmread(submitted.files[1])
        head, tail = str(extra.SOPInstanceUID).rsplit(".", 1)
        extra.SOPInstanceUID = extra.file_meta.MediaStorageSOPInstanceUID = (
            f"{head}.{'7' * len(tail)}"
        )
        path = ingested.root / "late.dcm"
        extra.save_as(path, enforce_file_format=True)
        from dicomhub.intake.service import IntakeService
        from tests.promote.conftest import ORIGIN

        intake = ingested.intake()
        try:
            service = IntakeService(intake)
            assert service.store(service.open_session(ORIGIN), path.read_bytes()).accepted
        finally:
            intake.close()
        result = run_promotion(context, PromoteParams(COLLECTION))
    finally:
        context.close()
    assert result["opened"] == "new"
    old, new = helpers.releases(settings.public_db)
    assert (old.state, new.state) == ("failed", "published")
    assert (old.error or "").startswith(f"superseded by release {new.id}")
    rows = helpers.instances(settings.public_db)
    assert len(rows) == len(submitted.files) + 1
    assert set(public_blobs(ingested)) == {r["key"] for r in rows.values()} | {new.manifest_key}
