"""The worker side: claim a queued job, run its function, record how it ended.

The same :func:`run_job` runs in a thread and on dask workers; it opens its own
engine from the URL in the spec, so nothing from the submitting process is needed.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import Job, make_engine, make_sessionmaker, session_scope, utcnow
from dicomhub.core.jobs.context import (
    CANCELLED,
    CANCELLING,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobCancelled,
    JobContext,
    JobSpec,
)
from dicomhub.core.jobs.registry import load_target

LOGGER = logging.getLogger(__name__)

LOST = "interrupted: the worker running this job was lost; it was not re-run"


def describe(exc: BaseException) -> str:
    """The error text stored on a failed job: the exception type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_job(spec: JobSpec) -> str:
    """Run one job to the end and return the state it ended in.

    A job that is no longer queued is not run: cancelled before it started, or
    found ``running`` because dask re-ran it after its worker died; the latter is
    marked failed rather than run twice.
    """
    engine = make_engine(spec.db_url)
    try:
        factory = make_sessionmaker(engine)
        claimed, state = _claim(factory, spec.job_id)
        if claimed:
            return _execute(spec, factory)
        if state in (RUNNING, CANCELLING):
            LOGGER.warning("job %s was already running: its worker was lost", spec.job_id)
            return finish(factory, spec.job_id, FAILED, error=LOST)
        return state
    finally:
        engine.dispose()


def _claim(factory: sessionmaker[Session], job_id: str) -> tuple[bool, str]:
    """Move the job from queued to running; ``(False, state)`` if it was not queued."""
    with session_scope(factory) as session:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(state=RUNNING, started_at=utcnow())
            ),
        )
        if claimed.rowcount == 1:
            return True, RUNNING
        state = session.scalar(select(Job.state).where(Job.id == job_id))
    return False, state if state is not None else "missing"


def _execute(spec: JobSpec, factory: sessionmaker[Session]) -> str:
    ctx = JobContext(spec.job_id, spec.db_url, spec.env, session_factory=factory)
    LOGGER.info("job %s (%s) started", spec.job_id, spec.kind)
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        result = _checked_result(load_target(spec.target)(ctx, dict(spec.params)))
        state = SUCCEEDED
    except JobCancelled:
        state = CANCELLED
    except Exception as exc:
        LOGGER.exception("job %s (%s) failed", spec.job_id, spec.kind)
        state, error = FAILED, describe(exc)
    try:
        ctx.flush()
    except Exception:
        LOGGER.exception("job %s: could not write its last progress", spec.job_id)
    ended = finish(factory, spec.job_id, state, result=result, error=error)
    LOGGER.info("job %s (%s) ended %s", spec.job_id, spec.kind, ended)
    return ended


def _checked_result(result: object) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise TypeError(f"a job function must return a dict, not {type(result).__name__}")
    try:
        return cast(dict[str, Any], json.loads(json.dumps(result)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a job's result must be JSON: {exc}") from exc


def finish(
    factory: sessionmaker[Session],
    job_id: str,
    state: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> str:
    """Record the end of a job that is still active; return the state it ends in.

    A cancel asked for while the function ran turns a success into ``cancelled``
    (the result is kept, it says what was done).  A job someone else already
    ended (e.g. marked interrupted) is left as it is.
    """
    with session_scope(factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.state not in (QUEUED, RUNNING, CANCELLING):
            return job.state if job is not None else "missing"
        if job.state == CANCELLING and state == SUCCEEDED:
            state = CANCELLED
        job.state, job.result, job.error, job.finished_at = state, result, error, utcnow()
        return state
