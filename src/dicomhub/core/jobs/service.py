"""Submit, inspect, wait for and cancel jobs; the ``job`` table is the single truth.

Every state change goes through the database, so a CLI in another process sees
progress and can cancel a job that a server runs (the job notices on its next
:meth:`JobContext.cancelled` check).
"""

from __future__ import annotations

import builtins
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from dicomhub.core.db import Job, make_engine, make_sessionmaker, session_scope, utcnow
from dicomhub.core.jobs.context import (
    ACTIVE_STATES,
    CANCELLED,
    CANCELLING,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STATES,
    JobSpec,
)
from dicomhub.core.jobs.executors import PROCESS_BOUND, Executor, InProcessExecutor
from dicomhub.core.jobs.registry import job_kind
from dicomhub.core.jobs.runner import describe, finish
from dicomhub.errors import BadRequest, Conflict, NotFound

LOGGER = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the process running this job stopped before it finished"


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job row, detached from any session."""

    id: str
    kind: str
    params: dict[str, Any]
    state: str
    progress_done: int
    progress_total: int | None
    message: str
    result: dict[str, Any] | None
    error: str | None
    executor: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, job: Job) -> JobInfo:
        return cls(
            id=job.id,
            kind=job.kind,
            params=dict(job.params),
            state=job.state,
            progress_done=job.progress_done,
            progress_total=job.progress_total,
            message=job.message,
            result=job.result,
            error=job.error,
            executor=job.executor,
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )

    @property
    def finished(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (timestamps as ISO 8601)."""
        body = asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            if body[key] is not None:
                body[key] = body[key].isoformat()
        return body


class JobService:
    """Jobs of one database (the intake or the public one).

    Parameters
    ----------
    db_url:
        The database whose ``job`` table holds the jobs (already migrated).
    executor:
        Where jobs run; None makes an :class:`InProcessExecutor` that this service
        owns and closes.  A given executor is left for its owner to close.
    env:
        Plain strings handed to every job (see :func:`~dicomhub.core.jobs.job_env`).
    """

    def __init__(
        self,
        db_url: str,
        executor: Executor | None = None,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.env = dict(env or {})
        self._owns_executor = executor is None
        self.executor: Executor = executor if executor is not None else InProcessExecutor()
        self._engine = make_engine(db_url)
        self._sessions = make_sessionmaker(self._engine)

    def close(self) -> None:
        """Close an owned executor (waiting for its running jobs) and the engine."""
        if self._owns_executor:
            self.executor.close()
        self._engine.dispose()

    def __enter__(self) -> JobService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- submitting ----------------------------------------------------------

    def submit(self, kind: str, params: dict[str, Any] | None = None, created_by: str = "") -> str:
        """Queue a job of a registered ``kind`` and return its id.

        Raises :class:`BadRequest` for an unknown kind or parameters that are not
        a JSON object or that the kind's check refuses; nothing is stored then.
        """
        registered = job_kind(kind)
        params = _json_object(params if params is not None else {})
        if registered.check is not None:
            registered.check(params)
        job_id = str(uuid.uuid4())
        with session_scope(self._sessions) as session:
            session.add(
                Job(
                    id=job_id,
                    kind=kind,
                    params=params,
                    state=QUEUED,
                    executor=self.executor.name,
                    created_by=created_by[:128],
                )
            )
        spec = JobSpec(job_id, kind, registered.target, params, self.db_url, self.env)
        try:
            self.executor.submit(spec, self._lost)
        except Exception as exc:
            LOGGER.exception("could not hand job %s to the %s executor", job_id, self.executor.name)
            finish(self._sessions, job_id, FAILED, error=f"not started: {describe(exc)}")
            raise
        LOGGER.info("job %s (%s) queued by %r on %s", job_id, kind, created_by, self.executor.name)
        return job_id

    def _lost(self, job_id: str, exc: BaseException) -> None:
        """The executor lost a job the runner could not end (dead worker, crashed runner)."""
        finish(self._sessions, job_id, FAILED, error=f"interrupted: {describe(exc)}")

    # -- reading -------------------------------------------------------------

    def get(self, job_id: str) -> JobInfo:
        """The job's current row; :class:`NotFound` if there is none."""
        with session_scope(self._sessions) as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            return JobInfo.from_row(job)

    def list(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        created_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[JobInfo]:
        """Jobs, newest first, optionally of one state, kind or submitter."""
        if state is not None and state not in STATES:
            raise BadRequest(f"unknown job state {state!r} (one of {', '.join(STATES)})")
        query = select(Job).order_by(Job.created_at.desc(), Job.id)
        if state is not None:
            query = query.where(Job.state == state)
        if kind is not None:
            query = query.where(Job.kind == kind)
        if created_by is not None:
            query = query.where(Job.created_by == created_by)
        query = query.limit(max(1, min(limit, 1000))).offset(max(0, offset))
        with session_scope(self._sessions) as session:
            return [JobInfo.from_row(job) for job in session.scalars(query)]

    def wait(self, job_id: str, timeout: float | None = None, *, poll: float = 0.1) -> JobInfo:
        """Block until the job has finished; :class:`TimeoutError` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id)
            if info.finished:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {info.state} after {timeout} s")
            time.sleep(poll)

    # -- changing --------------------------------------------------------------

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job: at once if queued, at its next cancel check if running.

        Raises :class:`Conflict` for a job that has already finished.
        """
        with session_scope(self._sessions) as session:
            dropped = _update_state(session, job_id, (QUEUED,), CANCELLED, finished=True)
            if not dropped:
                _update_state(session, job_id, (RUNNING,), CANCELLING)
        if dropped:
            self.executor.cancel(job_id)
        info = self.get(job_id)
        if info.state not in (CANCELLED, CANCELLING):
            raise Conflict(f"job {job_id} has already {info.state}; it cannot be cancelled")
        LOGGER.info("job %s: cancel asked (%s)", job_id, info.state)
        return info

    def recover_interrupted(self) -> builtins.list[str]:
        """Mark failed the unfinished jobs of executors that died with their process.

        The server calls this once at start-up: jobs left queued or running by a
        previous in-process (or private ``LocalCluster``) executor can never end,
        so they would otherwise show as running forever.  Jobs of a remote dask
        scheduler are left alone; they may still be running there.
        """
        query = select(Job.id).where(Job.state.in_(ACTIVE_STATES), Job.executor.in_(PROCESS_BOUND))
        with session_scope(self._sessions) as session:
            ids = list(session.scalars(query))
            if ids:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(ids), Job.state.in_(ACTIVE_STATES))
                    .values(state=FAILED, error=INTERRUPTED, finished_at=utcnow())
                )
        for job_id in ids:
            LOGGER.warning("job %s was interrupted; marked failed", job_id)
        return ids


def _update_state(
    session: Any, job_id: str, old: tuple[str, ...], new: str, *, finished: bool = False
) -> bool:
    values: dict[str, Any] = {"state": new}
    if finished:
        values["finished_at"] = utcnow()
    result = cast(
        CursorResult[Any],
        session.execute(update(Job).where(Job.id == job_id, Job.state.in_(old)).values(**values)),
    )
    return result.rowcount == 1


def _json_object(params: object) -> dict[str, Any]:
    """``params`` as stored: a JSON object, or :class:`BadRequest`."""
    if not isinstance(params, dict):
        raise BadRequest(f"job parameters must be a JSON object, not {type(params).__name__}")
    try:
        return cast(dict[str, Any], json.loads(json.dumps(params, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"job parameters must be JSON: {exc}") from exc
