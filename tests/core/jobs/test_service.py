"""JobService on the in-process executor, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from dicomhub.core.db import Job, make_engine, make_sessionmaker, session_scope, utcnow
from dicomhub.core.jobs import (
    CANCELLED,
    CANCELLING,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    InProcessExecutor,
    JobService,
    job_kind,
    make_executor,
)
from dicomhub.errors import BadRequest, ConfigurationError, Conflict, NotFound


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_job_runs_to_success_with_result_progress_and_timestamps(service: JobService) -> None:
    job_id = service.submit("sleep_count", {"count": 5, "delay": 0.01}, created_by="alice")
    job = service.wait(job_id, timeout=10)
    assert job.state == SUCCEEDED
    assert job.result == {"counted": 5}
    assert (job.progress_done, job.progress_total) == (5, 5)
    assert job.error is None
    assert job.kind == "sleep_count"
    assert job.params == {"count": 5, "delay": 0.01}
    assert job.created_by == "alice"
    assert job.executor == "inprocess"
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at
    assert job.to_dict()["finished_at"] == job.finished_at.isoformat()


def test_queued_until_a_worker_is_free_and_dropped_when_the_executor_closes(
    migrated_db_url: str,
) -> None:
    executor = InProcessExecutor(1)
    with JobService(migrated_db_url, executor) as jobs:
        blocker = jobs.submit("sleep_count", {"count": 10, "delay": 0.03})
        waiting = jobs.submit("sleep_count", {"count": 1, "delay": 0})
        assert jobs.get(waiting).state == QUEUED
        assert jobs.get(waiting).started_at is None
        executor.close()  # lets the running job finish, drops the queued one
        assert jobs.get(blocker).state == SUCCEEDED
        dropped = jobs.get(waiting)
        assert dropped.state == FAILED
        assert dropped.error == (
            "interrupted: ExecutorClosed: the executor closed before the job started"
        )


def test_progress_is_visible_from_another_session_while_running(
    service: JobService, migrated_db_url: str
) -> None:
    job_id = service.submit("sleep_count", {"count": 40, "delay": 0.05})
    engine = make_engine(migrated_db_url)
    try:
        sessions = make_sessionmaker(engine)

        def row() -> Job:
            with session_scope(sessions) as session:
                job = session.scalars(select(Job).where(Job.id == job_id)).one()
                session.expunge(job)
                return job

        wait_for(lambda: 0 < row().progress_done < 40)
        seen = row()
        assert seen.state == RUNNING
        assert seen.progress_total == 40
        assert seen.message == "counting"
    finally:
        engine.dispose()
    service.cancel(job_id)
    assert service.wait(job_id, timeout=10).state == CANCELLED


def test_a_failing_job_records_the_exception_message(service: JobService) -> None:
    job_id = service.submit("sleep_count", {"count": 10, "delay": 0, "fail_at": 3})
    job = service.wait(job_id, timeout=10)
    assert job.state == FAILED
    assert job.error == "RuntimeError: sleep_count failed at step 3 as asked"
    assert job.result is None
    assert job.progress_done == 2  # the last step reported, written at the end
    assert job.finished_at is not None


def test_a_result_that_is_not_a_dict_fails_the_job(service: JobService) -> None:
    job = service.wait(service.submit("test.not_a_dict"), timeout=10)
    assert job.state == FAILED
    assert job.error is not None
    assert "must return a dict, not list" in job.error


def test_a_function_that_cannot_be_imported_fails_the_job(service: JobService) -> None:
    job = service.wait(service.submit("test.missing_function"), timeout=10)
    assert job.state == FAILED
    assert job.error is not None
    assert "cannot import job function tests.core.jobs.kinds:no_such_function" in job.error


def test_env_and_params_reach_the_function(service: JobService) -> None:
    job_id = service.submit("test.echo", {"a": [1, "b"]})
    job = service.wait(job_id, timeout=10)
    assert job.result is not None
    assert job.result["job_id"] == job_id
    assert job.result["env"] == {"side": "intake"}
    assert job.result["params"] == {"a": [1, "b"]}


def test_unknown_kind_is_a_bad_request_and_stores_nothing(service: JobService) -> None:
    with pytest.raises(BadRequest, match=r"unknown job kind 'fixity'.*sleep_count"):
        service.submit("fixity", {})
    assert service.list() == []


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"count": -1}, "count must be between"),
        ({"count": "ten"}, "count must be an integer"),
        ({"count": True}, "count must be an integer"),
        ({"delay": "slow"}, "delay must be a number"),
        ({"colour": "red"}, "unknown parameters colour"),
        ({"count": 1, "when": object()}, "must be JSON"),
        ({"delay": float("nan")}, "must be JSON"),
        (["count", 1], "must be a JSON object, not list"),
    ],
)
def test_bad_params_are_a_bad_request_and_store_nothing(
    service: JobService, params: Any, match: str
) -> None:
    with pytest.raises(BadRequest, match=match):
        service.submit("sleep_count", params)
    assert service.list() == []


def test_cancel_a_queued_job_never_starts_it(migrated_db_url: str) -> None:
    executor = InProcessExecutor(1)
    with JobService(migrated_db_url, executor) as jobs:
        blocker = jobs.submit("sleep_count", {"count": 10, "delay": 0.02})
        waiting = jobs.submit("sleep_count", {"count": 1, "delay": 0})
        cancelled = jobs.cancel(waiting)
        assert cancelled.state == CANCELLED
        assert cancelled.finished_at is not None
        executor.close()
        assert jobs.get(blocker).state == SUCCEEDED
        after = jobs.get(waiting)
        assert after.state == CANCELLED
        assert after.started_at is None


def test_cancel_a_running_job_stops_it_at_its_next_check(service: JobService) -> None:
    job_id = service.submit("sleep_count", {"count": 500, "delay": 0.01})
    wait_for(lambda: service.get(job_id).progress_done > 0)
    assert service.cancel(job_id).state == CANCELLING
    assert service.cancel(job_id).state == CANCELLING  # asking twice is fine
    job = service.wait(job_id, timeout=10)
    assert job.state == CANCELLED
    assert job.progress_done < 500
    assert job.result is None


def test_a_job_that_finishes_despite_a_cancel_ends_cancelled_with_its_result(
    service: JobService,
) -> None:
    job_id = service.submit("test.ignore_cancel", {"seconds": 5})
    wait_for(lambda: service.get(job_id).state == RUNNING)
    service.cancel(job_id)
    job = service.wait(job_id, timeout=10)
    assert job.state == CANCELLED
    assert job.result == {"saw_cancel": True}


def test_cancel_a_finished_job_is_a_conflict(service: JobService) -> None:
    job_id = service.submit("sleep_count", {"count": 0})
    service.wait(job_id, timeout=10)
    with pytest.raises(Conflict, match="already succeeded"):
        service.cancel(job_id)


def test_unknown_job_is_not_found(service: JobService) -> None:
    with pytest.raises(NotFound):
        service.get("no-such-job")
    with pytest.raises(NotFound):
        service.cancel("no-such-job")


def test_wait_times_out_on_a_running_job(service: JobService) -> None:
    job_id = service.submit("sleep_count", {"count": 100, "delay": 0.02})
    with pytest.raises(TimeoutError, match="still"):
        service.wait(job_id, timeout=0.2)
    service.cancel(job_id)
    assert service.wait(job_id, timeout=10).state == CANCELLED


def test_concurrent_jobs_all_finish_and_overlap(service: JobService) -> None:
    ids = [service.submit("sleep_count", {"count": 5, "delay": 0.05}) for _ in range(8)]
    jobs = [service.wait(job_id, timeout=20) for job_id in ids]
    assert {job.state for job in jobs} == {SUCCEEDED}
    first_end = min(job.finished_at for job in jobs if job.finished_at)
    overlapping = [job for job in jobs if job.started_at and job.started_at < first_end]
    assert len(overlapping) >= 2


def test_list_filters_by_state_kind_and_submitter(service: JobService) -> None:
    ok = service.submit("sleep_count", {"count": 0}, created_by="alice")
    bad = service.submit("sleep_count", {"count": 1, "delay": 0, "fail_at": 1}, created_by="bob")
    echo = service.submit("test.echo", {}, created_by="bob")
    for job_id in (ok, bad, echo):
        service.wait(job_id, timeout=10)
    assert {job.id for job in service.list()} == {ok, bad, echo}
    assert [job.id for job in service.list(state=FAILED)] == [bad]
    assert [job.id for job in service.list(kind="test.echo")] == [echo]
    assert {job.id for job in service.list(created_by="bob")} == {bad, echo}
    assert len(service.list(limit=2)) == 2
    with pytest.raises(BadRequest, match="unknown job state"):
        service.list(state="lost")


def test_recover_interrupted_fails_only_jobs_of_dead_local_executors(
    migrated_db_url: str,
) -> None:
    rows = {
        "running-inprocess": (RUNNING, "inprocess"),
        "queued-inprocess": (QUEUED, "inprocess"),
        "cancelling-local": (CANCELLING, "dask-local"),
        "running-remote": (RUNNING, "dask"),
        "done-inprocess": (SUCCEEDED, "inprocess"),
    }
    engine = make_engine(migrated_db_url)
    with session_scope(make_sessionmaker(engine)) as session:
        for job_id, (state, executor) in rows.items():
            session.add(
                Job(id=job_id, kind="sleep_count", params={}, state=state, executor=executor)
            )
    engine.dispose()
    with JobService(migrated_db_url) as jobs:
        recovered = jobs.recover_interrupted()
        assert sorted(recovered) == ["cancelling-local", "queued-inprocess", "running-inprocess"]
        for job_id in recovered:
            job = jobs.get(job_id)
            assert job.state == FAILED
            assert job.error is not None
            assert job.error.startswith("interrupted")
            assert job.finished_at is not None
        assert jobs.get("running-remote").state == RUNNING
        assert jobs.get("done-inprocess").state == SUCCEEDED
        assert jobs.recover_interrupted() == []


def test_fixity_is_not_a_registered_kind() -> None:
    with pytest.raises(BadRequest):
        job_kind("fixity")


def test_make_executor_follows_the_settings() -> None:
    executor = make_executor("inprocess", None, workers=2)
    try:
        assert isinstance(executor, InProcessExecutor)
    finally:
        executor.close()
    with pytest.raises(ConfigurationError, match="unknown job executor"):
        make_executor("cron", None)  # type: ignore[arg-type]


def test_utcnow_rows_are_aware(service: JobService) -> None:
    job = service.wait(service.submit("sleep_count", {"count": 0}), timeout=10)
    assert job.created_at.tzinfo is not None
    assert job.created_at <= utcnow()
