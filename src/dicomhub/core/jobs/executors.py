"""Where jobs run: threads of this process, or a dask.distributed cluster.

Both run :func:`dicomhub.core.jobs.runner.run_job` with a plain :class:`JobSpec`;
the runner records the outcome itself.  ``on_lost`` is called only when the
runner could not (its dask worker died for good, or the runner itself crashed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, Protocol

from dicomhub.core.jobs.context import JobSpec
from dicomhub.core.jobs.runner import run_job
from dicomhub.errors import ConfigurationError

LOGGER = logging.getLogger(__name__)

OnLost = Callable[[str, BaseException], None]

#: Executors whose jobs die with this process (see ``JobService.recover_interrupted``).
PROCESS_BOUND = ("inprocess", "dask-local")


class ExecutorClosed(RuntimeError):
    """Handed to ``on_lost`` for jobs dropped, unstarted, because the executor closed."""


class Executor(Protocol):
    """Runs job specs somewhere; ``name`` is recorded on each job row."""

    name: str

    def submit(self, spec: JobSpec, on_lost: OnLost) -> None:
        """Start ``spec`` (asynchronously)."""

    def cancel(self, job_id: str) -> bool:
        """Drop the job if it has not started; True if it was dropped."""

    def close(self) -> None:
        """Release the workers: running jobs finish, queued ones are dropped (``on_lost``)."""


class InProcessExecutor:
    """A thread pool in this process: the default, no extra services needed."""

    name = "inprocess"

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicomhub-job")
        self._futures: dict[str, Future[str]] = {}
        self._dropped: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, spec: JobSpec, on_lost: OnLost) -> None:
        future = self._pool.submit(run_job, spec)
        with self._lock:
            self._futures[spec.job_id] = future
        future.add_done_callback(lambda done: self._done(spec.job_id, done, on_lost))

    def _done(self, job_id: str, future: Future[str], on_lost: OnLost) -> None:
        with self._lock:
            self._futures.pop(job_id, None)
            asked = job_id in self._dropped
            self._dropped.discard(job_id)
        if future.cancelled():
            if not asked:
                on_lost(job_id, ExecutorClosed("the executor closed before the job started"))
            return
        exc = future.exception()
        if exc is not None:
            on_lost(job_id, exc)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            future = self._futures.get(job_id)
            if future is None:
                return False
            self._dropped.add(job_id)
        return future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """A dask.distributed cluster: a scheduler's address, or a private ``LocalCluster``.

    Parameters
    ----------
    scheduler:
        ``tcp://host:port`` of a running scheduler; its workers must be able to
        import ``dicomhub`` and reach the databases.  None starts a ``LocalCluster``
        that lives (and dies) with this process.
    processes, n_workers, threads_per_worker:
        The ``LocalCluster`` shape; ignored with a scheduler address.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        processes: bool = False,
        n_workers: int = 1,
        threads_per_worker: int = 2,
    ) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        if scheduler:
            self.name = "dask"
            self.client: Any = Client(scheduler)  # type: ignore[no-untyped-call]
        else:
            self.name = "dask-local"
            # Loopback only, no dashboard, and the scheduler's health endpoint on a free
            # port (by default it takes 8787, colliding with any other local cluster).
            self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                host="127.0.0.1" if processes else None,  # threads talk in-process
                processes=processes,
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
            self.client = Client(self._cluster)  # type: ignore[no-untyped-call]
        self._futures: dict[str, Any] = {}
        self._dropped: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, spec: JobSpec, on_lost: OnLost) -> None:
        future = self.client.submit(run_job, spec, key=f"dicomhub-job-{spec.job_id}")
        with self._lock:
            self._futures[spec.job_id] = future
        future.add_done_callback(lambda done: self._done(spec.job_id, done, on_lost))

    def _done(self, job_id: str, future: Any, on_lost: OnLost) -> None:
        with self._lock:
            self._futures.pop(job_id, None)
            asked = job_id in self._dropped
            self._dropped.discard(job_id)
        if future.status == "cancelled" and not asked:
            on_lost(job_id, ExecutorClosed("dask cancelled the job before it ended"))
        elif future.status == "error":
            exc = future.exception()
            LOGGER.error("dask lost job %s: %s", job_id, exc)
            on_lost(job_id, exc)

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            future = self._futures.get(job_id)
            if future is None or future.status != "pending":
                return False
            self._dropped.add(job_id)
        future.cancel()
        return True

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(
    kind: Literal["inprocess", "dask"], dask_scheduler: str | None = None, *, workers: int = 4
) -> Executor:
    """The executor the settings ask for (``job_executor``, ``dask_scheduler``)."""
    if kind == "inprocess":
        return InProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(dask_scheduler)
    raise ConfigurationError(f"unknown job executor {kind!r}; use inprocess or dask")
