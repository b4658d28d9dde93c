"""The schema on both databases: migrations, constraints, cascades and column types."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from dicomhub.core.db import (
    Access,
    Base,
    Collection,
    Instance,
    Patient,
    QuarantineItem,
    QuarantineState,
    Series,
    Site,
    Study,
    make_engine,
    make_sessionmaker,
)
from dicomhub.core.db.migrate import alembic_config, current, upgrade

HEADER: dict[str, Any] = {
    "00080060": {"vr": "CS", "Value": ["CT"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
    "00200013": {"vr": "IS", "Value": [7]},
    "00280030": {"vr": "DS", "Value": [0.5, 0.5]},
    "7FE00010": {"vr": "OW"},
}


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def build_chain(session: Session, suffix: str = "1") -> Instance:
    """Collection -> Site -> Patient -> Study -> Series -> Instance, flushed."""
    collection = Collection(name=f"LIDC-{suffix}", access=Access.LIMITED, license_name="CC BY 4.0")
    site = Site(collection=collection, name="site-a")
    session.add_all([collection, site])
    session.flush()
    patient = Patient(
        collection_id=collection.id, site_id=site.id, patient_id=f"P{suffix}", patient_sex="F"
    )
    study = Study(
        patient=patient, study_instance_uid=f"1.2.3.{suffix}", study_date=date(2020, 1, 2)
    )
    series = Series(
        study=study,
        collection_id=collection.id,
        series_instance_uid=f"1.2.3.{suffix}.1",
        modality="CT",
        series_number=3,
    )
    instance = Instance(
        series=series,
        sop_instance_uid=f"1.2.3.{suffix}.1.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        instance_number=7,
        size=5 * 2**30,  # BigInteger: larger than 32 bits
        sha256="a" * 64,
        md5="b" * 32,
        blob_key=f"instances/{suffix}",
        header=HEADER,
    )
    session.add_all([study, series, instance])
    session.flush()
    return instance


def count(session: Session, model: type[Base]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_migrations_reach_head(db_url: str) -> None:
    assert current(db_url) is None
    upgrade(db_url)
    assert current(db_url) == head_revision(db_url)
    upgrade(db_url)  # idempotent at head
    assert current(db_url) == head_revision(db_url)


def test_models_match_migrations(migrated_db_url: str) -> None:
    """The ``alembic check`` of CI: autogenerate against head finds nothing to do."""
    engine = make_engine(migrated_db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migrated_tables(db_engine: Engine) -> None:
    tables = set(inspect(db_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_chain_round_trip(db_engine: Engine) -> None:
    factory = make_sessionmaker(db_engine)
    with factory() as session:
        build_chain(session)
        session.commit()
    with factory() as session:
        instance = session.scalars(select(Instance)).one()
        assert instance.header == HEADER
        assert instance.size == 5 * 2**30
        series = instance.series
        assert (series.modality, series.series_number) == ("CT", 3)
        study = series.study
        assert study.study_date == date(2020, 1, 2)
        patient = study.patient
        assert patient.patient_id == "P1"
        collection = session.get(Collection, patient.collection_id)
        assert collection is not None
        assert collection.access is Access.LIMITED
        assert [site.name for site in collection.sites] == ["site-a"]
        assert patient.site_id == collection.sites[0].id
        assert series.collection_id == collection.id
        assert collection.created_at.tzinfo is not None


def test_duplicate_sop_instance_uid_rejected(db_session: Session) -> None:
    instance = build_chain(db_session)
    db_session.commit()
    twin = Instance(
        series_id=instance.series_id,
        sop_instance_uid=instance.sop_instance_uid,
        sop_class_uid=instance.sop_class_uid,
        transfer_syntax_uid=instance.transfer_syntax_uid,
        size=1,
        sha256="c" * 64,
        md5="d" * 32,
        blob_key="instances/twin",
        header={},
    )
    db_session.add(twin)
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()
    assert count(db_session, Instance) == 1


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (Collection, {"name": "dup"}),
        (Study, {"study_instance_uid": "1.2.3.1"}),
        (Series, {"series_instance_uid": "1.2.3.1.1"}),
    ],
    ids=["collection-name", "study-uid", "series-uid"],
)
def test_other_unique_constraints(
    db_session: Session, model: type[Base], values: dict[str, str]
) -> None:
    instance = build_chain(db_session)
    db_session.commit()
    if model is Collection:
        db_session.add(Collection(name="dup"))
        db_session.commit()
        db_session.add(Collection(**values))
    elif model is Study:
        db_session.add(Study(patient_id=instance.series.study.patient_id, **values))
    else:
        study = instance.series.study
        db_session.add(
            Series(study_id=study.id, collection_id=instance.series.collection_id, **values)
        )
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()


def test_site_name_unique_within_collection(db_session: Session) -> None:
    instance = build_chain(db_session)
    collection_id = instance.series.collection_id
    db_session.commit()
    db_session.add(Collection(name="other", sites=[Site(name="site-a")]))
    db_session.commit()  # the same site name in another collection is fine
    db_session.add(Site(collection_id=collection_id, name="site-a"))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()


def test_delete_collection_cascades(db_session: Session) -> None:
    """Deleting a collection removes everything under it, in the database itself."""
    build_chain(db_session, "1")
    keep = build_chain(db_session, "2")
    db_session.commit()
    db_session.execute(delete(Collection).where(Collection.name == "LIDC-1"))
    db_session.commit()
    db_session.expunge_all()
    for model in (Collection, Site, Patient, Study, Series, Instance):
        assert count(db_session, model) == 1, model.__name__
    assert db_session.scalars(select(Instance.sop_instance_uid)).one() == keep.sop_instance_uid


def test_delete_series_cascades_to_instances_only(db_session: Session) -> None:
    instance = build_chain(db_session)
    db_session.commit()
    db_session.execute(delete(Series).where(Series.id == instance.series_id))
    db_session.commit()
    assert count(db_session, Instance) == 0
    assert count(db_session, Series) == 0
    assert count(db_session, Study) == 1


def test_delete_site_keeps_patients(db_session: Session) -> None:
    instance = build_chain(db_session)
    db_session.commit()
    patient_id = instance.series.study.patient_id
    db_session.execute(delete(Site))
    db_session.commit()
    db_session.expunge_all()
    patient = db_session.get(Patient, patient_id)
    assert patient is not None
    assert patient.site_id is None


def test_aware_datetimes_round_trip(db_engine: Engine) -> None:
    factory = make_sessionmaker(db_engine)
    plus_two = timezone(timedelta(hours=2))
    stamp = datetime(2024, 3, 31, 1, 30, 15, 123456, tzinfo=plus_two)
    with factory() as session:
        session.add(Collection(name="tz", created_at=stamp, updated_at=stamp))
        session.commit()
    with factory() as session:
        collection = session.scalars(select(Collection)).one()
        assert collection.created_at == stamp
        assert collection.created_at.tzinfo is not None
        assert collection.created_at.utcoffset() == timedelta(0)
        assert collection.created_at.hour == 23  # stored as UTC
        later = session.scalars(
            select(Collection).where(
                Collection.created_at > datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
            )
        ).all()
        assert [c.name for c in later] == ["tz"]


def test_naive_datetime_refused(db_session: Session) -> None:
    db_session.add(Collection(name="naive", created_at=datetime(2024, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime"):
        db_session.flush()
    db_session.rollback()


def test_enums_stored_as_values(db_session: Session) -> None:
    db_session.add(Collection(name="c", access=Access.LIMITED))
    db_session.add(
        QuarantineItem(
            reason_code="not-dicom", detail="x", blob_key="q/1", state=QuarantineState.RELEASED
        )
    )
    db_session.commit()
    assert db_session.execute(text("SELECT access FROM collection")).scalar_one() == "limited"
    assert db_session.execute(text("SELECT state FROM quarantine_item")).scalar_one() == "released"
    db_session.expunge_all()
    item = db_session.scalars(select(QuarantineItem)).one()
    assert item.state is QuarantineState.RELEASED


def test_orm_delete_collection_cascades(db_session: Session) -> None:
    instance = build_chain(db_session)
    db_session.commit()
    collection = db_session.get(Collection, instance.series.collection_id)
    db_session.delete(collection)
    db_session.commit()
    assert count(db_session, Instance) == 0
