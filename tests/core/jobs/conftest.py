"""Job services on each database backend, and dask executors shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.core.jobs.kinds  # noqa: F401  (registers the test kinds)
from dicomhub.core.jobs import DaskExecutor, InProcessExecutor, JobService


@pytest.fixture
def service(migrated_db_url: str) -> Iterator[JobService]:
    """A service on the in-process executor (four threads)."""
    with JobService(migrated_db_url, InProcessExecutor(4), env={"side": "intake"}) as jobs:
        try:
            yield jobs
        finally:
            jobs.executor.close()


@pytest.fixture(scope="module")
def dask_threads() -> Iterator[DaskExecutor]:
    """A LocalCluster with a threaded worker: fast, same process."""
    executor = DaskExecutor(processes=False, n_workers=1, threads_per_worker=2)
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def dask_processes() -> Iterator[DaskExecutor]:
    """A LocalCluster with one worker process: jobs must pickle and import by path."""
    executor = DaskExecutor(processes=True, n_workers=1, threads_per_worker=2)
    yield executor
    executor.close()
