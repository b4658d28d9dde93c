"""Bulk jobs (promotion, re-indexing, header analysis, ...) behind one interface.

A kind is a name registered with the import path of a plain function
``func(ctx: JobContext, params: dict) -> dict``; :class:`JobService` queues it in
the ``job`` table and hands it to an executor (threads or dask), whose worker
runs :func:`~dicomhub.core.jobs.runner.run_job`.
"""

from dicomhub.core.jobs.context import (
    CANCELLED,
    CANCELLING,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STATES,
    SUCCEEDED,
    JobCancelled,
    JobContext,
    JobSpec,
    job_env,
)
from dicomhub.core.jobs.executors import DaskExecutor, Executor, InProcessExecutor, make_executor
from dicomhub.core.jobs.registry import JobKind, job_kind, job_kinds, register_job_kind
from dicomhub.core.jobs.service import JobInfo, JobService

__all__ = [
    "CANCELLED",
    "CANCELLING",
    "FAILED",
    "FINAL_STATES",
    "QUEUED",
    "RUNNING",
    "STATES",
    "SUCCEEDED",
    "DaskExecutor",
    "Executor",
    "InProcessExecutor",
    "JobCancelled",
    "JobContext",
    "JobInfo",
    "JobKind",
    "JobService",
    "JobSpec",
    "job_env",
    "job_kind",
    "job_kinds",
    "make_executor",
    "register_job_kind",
]
