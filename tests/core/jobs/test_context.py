"""JobContext: throttled progress writes, cancel checks, pickling, the env of each side."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from sqlalchemy import Engine, event

from dicomhub.core.db import Job, make_engine, make_sessionmaker, session_scope
from dicomhub.core.jobs import CANCELLING, JobCancelled, JobContext, job_env
from dicomhub.settings import load_settings


@pytest.fixture
def engine(migrated_db_url: str) -> Any:
    engine = make_engine(migrated_db_url)
    with session_scope(make_sessionmaker(engine)) as session:
        session.add(Job(id="job-1", kind="sleep_count", params={}, state="running"))
    yield engine
    engine.dispose()


def count_job_updates(engine: Engine) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE JOB"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def row(engine: Engine) -> Job:
    with session_scope(make_sessionmaker(engine)) as session:
        job = session.get(Job, "job-1")
        assert job is not None
        return job


def test_progress_is_written_at_most_once_per_interval_and_flushed(
    engine: Engine, migrated_db_url: str
) -> None:
    ctx = JobContext("job-1", migrated_db_url, session_factory=make_sessionmaker(engine))
    updates = count_job_updates(engine)
    ctx.progress(0, 1000, "starting")
    for done in range(1, 1001):
        ctx.progress(done)
    assert len(updates) == 1  # the first call; the rest fell inside the interval
    assert (row(engine).progress_done, row(engine).progress_total) == (0, 1000)
    ctx.flush()
    assert len(updates) == 2
    stored = row(engine)
    assert (stored.progress_done, stored.progress_total, stored.message) == (1000, 1000, "starting")
    ctx.flush()
    assert len(updates) == 2  # nothing new to write


def test_progress_writes_again_once_the_interval_has_passed(
    engine: Engine, migrated_db_url: str
) -> None:
    ctx = JobContext(
        "job-1", migrated_db_url, session_factory=make_sessionmaker(engine), interval=0
    )
    ctx.progress(1, 3, "one")
    ctx.progress(2, message="two")
    stored = row(engine)
    assert (stored.progress_done, stored.progress_total, stored.message) == (2, 3, "two")
    assert ctx.snapshot == (2, 3, "two")


def test_cancelled_reads_the_row_and_raise_if_cancelled_raises(
    engine: Engine, migrated_db_url: str
) -> None:
    ctx = JobContext("job-1", migrated_db_url, interval=0)  # makes its own engine
    try:
        assert not ctx.cancelled()
        ctx.raise_if_cancelled()
        with session_scope(make_sessionmaker(engine)) as session:
            job = session.get(Job, "job-1")
            assert job is not None
            job.state = CANCELLING
        assert ctx.cancelled()
        with pytest.raises(JobCancelled):
            ctx.raise_if_cancelled()
    finally:
        ctx.close()


def test_a_context_pickles_as_plain_data() -> None:
    ctx = JobContext("job-1", "sqlite:///nowhere.db", {"side": "public"})
    copy = pickle.loads(pickle.dumps(ctx))
    assert (copy.job_id, copy.db_url, copy.env) == ("job-1", "sqlite:///nowhere.db", ctx.env)


def test_job_env_of_the_public_side_has_no_intake_field(tmp_path: Any) -> None:
    settings = load_settings(data_dir=tmp_path, secret_key="s" * 32)
    public = job_env(settings.public())
    intake = job_env(settings.intake())
    assert public == {
        "side": "public",
        "data_dir": str(settings.resolved_data_dir),
        "database_url": settings.public_db,
        "store_url": settings.public_store_url,
    }
    assert intake == {
        "side": "intake",
        "data_dir": str(settings.resolved_data_dir),
        "database_url": settings.intake_db,
        "store_url": settings.intake_store_url,
        "accounts_database_url": settings.public_db,
    }
    assert not any("s" * 32 in value for value in intake.values())
