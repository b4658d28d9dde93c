"""The same jobs on dask.distributed: a threaded LocalCluster and a process one."""

from __future__ import annotations

import os
import time

import pytest

from dicomhub.core.jobs import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    DaskExecutor,
    JobService,
    make_executor,
)


def test_job_succeeds_on_a_threaded_local_cluster(
    migrated_db_url: str, dask_threads: DaskExecutor
) -> None:
    with JobService(migrated_db_url, dask_threads) as jobs:
        job = jobs.wait(jobs.submit("sleep_count", {"count": 5, "delay": 0.01}), timeout=30)
    assert job.state == SUCCEEDED
    assert job.result == {"counted": 5}
    assert (job.progress_done, job.progress_total) == (5, 5)
    assert job.executor == "dask-local"


def test_failure_and_cancel_on_dask(migrated_db_url: str, dask_threads: DaskExecutor) -> None:
    with JobService(migrated_db_url, dask_threads) as jobs:
        failing = jobs.submit("sleep_count", {"count": 5, "delay": 0, "fail_at": 2})
        long = jobs.submit("sleep_count", {"count": 500, "delay": 0.01})
        deadline = time.monotonic() + 30
        while jobs.get(long).progress_done == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        jobs.cancel(long)
        failed = jobs.wait(failing, timeout=30)
        cancelled = jobs.wait(long, timeout=30)
    assert failed.state == FAILED
    assert failed.error == "RuntimeError: sleep_count failed at step 2 as asked"
    assert cancelled.state == CANCELLED


def test_concurrent_jobs_on_dask(migrated_db_url: str, dask_threads: DaskExecutor) -> None:
    with JobService(migrated_db_url, dask_threads) as jobs:
        ids = [jobs.submit("sleep_count", {"count": 3, "delay": 0.02}) for _ in range(6)]
        states = {jobs.wait(job_id, timeout=30).state for job_id in ids}
    assert states == {SUCCEEDED}


def test_make_executor_connects_to_a_scheduler_address(
    migrated_db_url: str, dask_threads: DaskExecutor
) -> None:
    address = dask_threads.client.scheduler.address
    executor = make_executor("dask", address)
    try:
        assert isinstance(executor, DaskExecutor)
        assert executor.name == "dask"
        with JobService(migrated_db_url, executor) as jobs:
            job = jobs.wait(jobs.submit("sleep_count", {"count": 2, "delay": 0}), timeout=30)
        assert job.state == SUCCEEDED
        assert job.executor == "dask"
    finally:
        executor.close()


def test_a_worker_process_imports_the_job_by_path_and_gets_its_env(
    migrated_db_url: str, dask_processes: DaskExecutor
) -> None:
    env = {"side": "public", "public_database_url": migrated_db_url}
    with JobService(migrated_db_url, dask_processes, env=env) as jobs:
        job_id = jobs.submit("test.echo", {"n": 1})
        job = jobs.wait(job_id, timeout=60)
        counted = jobs.wait(jobs.submit("sleep_count", {"count": 3, "delay": 0}), timeout=60)
    assert job.state == SUCCEEDED, job.error
    assert job.result is not None
    assert job.result["pid"] != os.getpid()  # really ran in the worker process
    assert job.result["env"] == env
    assert job.result["job_id"] == job_id
    assert counted.state == SUCCEEDED
    assert counted.progress_done == 3


@pytest.mark.slow
def test_a_job_whose_worker_process_dies_ends_failed(
    migrated_db_url: str, dask_processes: DaskExecutor
) -> None:
    with JobService(migrated_db_url, dask_processes) as jobs:
        job_id = jobs.submit("test.die")
        job = jobs.wait(job_id, timeout=90)
        assert job.state == FAILED
        assert job.error is not None
        assert job.error.startswith("interrupted")
        assert job.progress_done == 1
        # The nanny restarts the worker: the cluster still runs jobs.
        after = jobs.wait(jobs.submit("sleep_count", {"count": 1, "delay": 0}), timeout=60)
        assert after.state == SUCCEEDED
        assert RUNNING not in {j.state for j in jobs.list()}
