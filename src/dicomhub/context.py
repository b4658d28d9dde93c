"""The application objects every entry point shares, one per side of the wall.

The web apps, the DIMSE listener and the CLI all build one of these from
settings and call services through it (as Orthanc's ServerContext does), so a
command-line action and an HTTP request run the same code.  The public context
is built from :class:`PublicSettings` only: it has no way to reach the intake
database or store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from dicomhub.core.db import make_engine, make_sessionmaker
from dicomhub.core.db.migrate import current
from dicomhub.core.jobs import JobService, job_env, make_executor
from dicomhub.core.store.base import BlobStore
from dicomhub.core.store.factory import make_store
from dicomhub.errors import ConfigurationError, StorageError
from dicomhub.settings import IntakeSettings, PublicSettings

LOGGER = logging.getLogger(__name__)


@dataclass
class Database:
    """An engine and its session factory, closed together."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str) -> Database:
        engine = make_engine(url)
        return cls(url=url, engine=engine, sessions=make_sessionmaker(engine))

    def require_schema(self, what: str) -> None:
        """Fail at start with one line if the schema was never migrated."""
        if current(self.url) is None:
            raise ConfigurationError(
                f"the {what} database has no schema; run `dicomhub db upgrade` first"
            )

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()


class _JobsMixin:
    """The side's job service, shared by both contexts."""

    settings: IntakeSettings | PublicSettings
    db: Database

    @cached_property
    def jobs(self) -> JobService:
        """Bulk jobs of this side, on the configured executor (made on first use)."""
        return _job_service(self.settings, self.db.url)


def _close_jobs(context: _JobsMixin) -> None:
    if "jobs" in context.__dict__:
        context.jobs.close()
        context.jobs.executor.close()


@dataclass
class PublicContext(_JobsMixin):
    """The public side: released data only."""

    settings: PublicSettings
    db: Database
    store: BlobStore
    side: str = field(default="public", init=False)

    @classmethod
    def from_settings(cls, settings: PublicSettings, *, check: bool = True) -> PublicContext:
        db = Database.open(settings.database_url)
        store = make_store(settings.store_url, settings.s3)
        context = cls(settings=settings, db=db, store=store)
        if check:
            context.check()
        return context

    @property
    def accounts(self) -> Database:
        """Accounts live in the public database."""
        return self.db

    def check(self) -> None:
        """Verify at start-up that the database is migrated and the store writable."""
        self.db.require_schema("public")
        _check_store(self.store)

    def close(self) -> None:
        _close_jobs(self)
        self.db.close()


@dataclass
class IntakeContext(_JobsMixin):
    """The intake side (may hold PHI); reads accounts from the public database."""

    settings: IntakeSettings
    db: Database
    accounts: Database
    store: BlobStore
    side: str = field(default="intake", init=False)

    @classmethod
    def from_settings(cls, settings: IntakeSettings, *, check: bool = True) -> IntakeContext:
        db = Database.open(settings.database_url)
        accounts = Database.open(settings.accounts_database_url)
        store = make_store(settings.store_url, settings.s3)
        context = cls(settings=settings, db=db, accounts=accounts, store=store)
        if check:
            context.check()
        return context

    def check(self) -> None:
        """Verify at start-up that both databases are migrated and the store writable."""
        self.db.require_schema("intake")
        self.accounts.require_schema("accounts (public)")
        _check_store(self.store)

    def close(self) -> None:
        _close_jobs(self)
        self.db.close()
        self.accounts.close()


def _job_service(settings: IntakeSettings | PublicSettings, url: str) -> JobService:
    executor = make_executor(settings.job_executor, settings.dask_scheduler)
    return JobService(url, executor, env=job_env(settings))


def _check_store(store: BlobStore) -> None:
    try:
        store.check()
    except StorageError as exc:
        raise ConfigurationError(f"blob store {store.url} is not usable: {exc.message}") from exc
