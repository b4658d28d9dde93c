"""What a job function receives: its id, a progress reporter, a cancel check, an env.

A job may run in another process or on another machine (a dask worker), so the
context holds only plain data (the jobs database URL and a string ``env``) and
rebuilds its database access where it runs.  Progress goes straight to the job's
row, throttled, so any process reading the database sees it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import Job, make_engine, make_sessionmaker, session_scope
from dicomhub.settings import IntakeSettings, PublicSettings

LOGGER = logging.getLogger(__name__)

QUEUED = "queued"
RUNNING = "running"
CANCELLING = "cancelling"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (QUEUED, RUNNING, CANCELLING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE_STATES = (QUEUED, RUNNING, CANCELLING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)

#: Progress is written at most this often (seconds); the runner always writes the last.
PROGRESS_INTERVAL = 0.5


class JobCancelled(Exception):
    """Raised by a job function (see :meth:`JobContext.raise_if_cancelled`) to stop early."""


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to run one job; plain data, so it pickles anywhere.

    ``target`` is the ``"module:function"`` path, resolved on the worker, never a
    function object from the submitting process.
    """

    job_id: str
    kind: str
    target: str
    params: dict[str, Any]
    db_url: str
    env: dict[str, str] = field(default_factory=dict)


def job_env(settings: IntakeSettings | PublicSettings) -> dict[str, str]:
    """The ``env`` handed to the jobs of one side, from that side's settings view.

    Only resolved locations travel, never secrets: workers read S3 keys and the
    instance secret from their own environment (:func:`dicomhub.settings.load_settings`).
    The env carries what the submitting process may have resolved differently
    (overrides, the data dir).  Built from :class:`PublicSettings`, it has no
    intake field at all.
    """
    env = {
        "side": "intake" if isinstance(settings, IntakeSettings) else "public",
        "data_dir": str(settings.data_dir),
        "database_url": settings.database_url,
        "store_url": settings.store_url,
    }
    if isinstance(settings, IntakeSettings):
        env["accounts_database_url"] = settings.accounts_database_url
    return env


class JobContext:
    """Handed to a job function as its first argument.

    Parameters
    ----------
    job_id:
        The job's id (a row of the ``job`` table at ``db_url``).
    db_url:
        The database holding the job row.
    env:
        Plain strings from which the function rebuilds what it needs
        (see :func:`job_env`).
    session_factory:
        Sessions on ``db_url``; the runner passes its own, otherwise the context
        makes (and :meth:`close` disposes) an engine on first use.
    """

    def __init__(
        self,
        job_id: str,
        db_url: str,
        env: dict[str, str] | None = None,
        *,
        session_factory: sessionmaker[Session] | None = None,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.job_id = job_id
        self.db_url = db_url
        self.env: dict[str, str] = dict(env or {})
        self.interval = interval
        self._factory = session_factory
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._message = ""
        self._dirty = False
        self._last_write = float("-inf")
        self._last_check = float("-inf")
        self._cancelled = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the plain data travels; the receiving side opens its own connection.
        return (JobContext, (self.job_id, self.db_url, self.env))

    # -- progress ----------------------------------------------------------

    @property
    def snapshot(self) -> tuple[int, int | None, str]:
        """The latest ``(done, total, message)`` reported, written or not."""
        with self._lock:
            return self._done, self._total, self._message

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress; written to the job row at most every ``interval`` seconds.

        ``total`` and ``message`` keep their previous values when not given, so a
        loop can set the total once and then report only ``done``.
        """
        with self._lock:
            self._done = int(done)
            if total is not None:
                self._total = int(total)
            if message:
                self._message = message
            self._dirty = True
            if time.monotonic() - self._last_write < self.interval:
                return
            self._write_locked()

    def flush(self) -> None:
        """Write the latest progress now (the runner calls this at the end)."""
        with self._lock:
            if self._dirty:
                self._write_locked()

    def _write_locked(self) -> None:
        values = {"progress_done": self._done, "progress_total": self._total}
        if self._message:
            values["message"] = self._message  # type: ignore[assignment]
        with session_scope(self._sessions()) as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))
        self._dirty = False
        self._last_write = time.monotonic()

    # -- cancellation ------------------------------------------------------

    def cancelled(self) -> bool:
        """True once someone asked to cancel this job (read at most every ``interval``)."""
        with self._lock:
            if self._cancelled or time.monotonic() - self._last_check < self.interval:
                return self._cancelled
            with session_scope(self._sessions()) as session:
                state = session.scalar(select(Job.state).where(Job.id == self.job_id))
            self._last_check = time.monotonic()
            self._cancelled = state in (CANCELLING, CANCELLED)
            return self._cancelled

    def raise_if_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was asked for; call it between items."""
        if self.cancelled():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    # -- resources ---------------------------------------------------------

    def _sessions(self) -> sessionmaker[Session]:
        if self._factory is None:
            self._engine = make_engine(self.db_url)
            self._factory = make_sessionmaker(self._engine)
        return self._factory

    def close(self) -> None:
        """Dispose the engine this context made for itself, if any."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._factory = None
