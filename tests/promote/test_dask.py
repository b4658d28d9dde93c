"""The promotion job on dask.distributed LocalClusters: threads, and a worker process."""

from __future__ import annotations

import pytest

from dicomhub.core.jobs import SUCCEEDED, DaskExecutor
from dicomhub.promote import PromoteParams
from tests.promote import helpers
from tests.promote.conftest import COLLECTION, Sides, run_job


def test_promotion_on_a_threaded_local_cluster(ingested: Sides) -> None:
    executor = DaskExecutor(processes=False, n_workers=1, threads_per_worker=2)
    try:
        job = run_job(ingested.settings, PromoteParams(COLLECTION, workers=2), executor)
    finally:
        executor.close()
    assert job.state == SUCCEEDED, job.error
    assert job.executor == "dask-local"
    assert (job.progress_done, job.progress_total) == (
        2 * job.result["intake_counts"]["instances"],
    ) * 2  # type: ignore[index]
    assert helpers.counts(ingested.settings.public_db) == helpers.counts(
        ingested.settings.intake_db
    )


@pytest.mark.parametrize("db_backend", ["sqlite"])
def test_promotion_on_a_worker_process(ingested: Sides) -> None:
    # The worker imports the job by path and reads the secret from its own environment.
    executor = DaskExecutor(processes=True, n_workers=1, threads_per_worker=1)
    try:
        job = run_job(ingested.settings, PromoteParams(COLLECTION), executor)
    finally:
        executor.close()
    assert job.state == SUCCEEDED, job.error
    assert helpers.counts(ingested.settings.public_db) == helpers.counts(
        ingested.settings.intake_db
    )
