"""Both sides at once, for promotion only: built from the full settings, in the job.

The public app's context cannot reach intake (its settings view has no intake
field); promotion is the one place that needs both, so it builds its own from
:class:`~dicomhub.settings.Settings`.  A job may run on another machine, so what
travels to it is plain locations (:func:`promotion_env`), never a secret: the
worker reads the instance secret from its own environment, as every job does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dicomhub.context import Database
from dicomhub.core.store.base import BlobStore
from dicomhub.core.store.factory import make_store
from dicomhub.errors import ConfigurationError, StorageError
from dicomhub.settings import Settings, load_settings

LOGGER = logging.getLogger(__name__)


def promotion_env(settings: Settings) -> dict[str, str]:
    """The job ``env`` of a promotion: where both databases and stores are."""
    env = {
        "side": "promote",
        "data_dir": str(settings.resolved_data_dir),
        "intake_database_url": settings.intake_db,
        "intake_store": settings.intake_store_url,
        "public_database_url": settings.public_db,
        "public_store": settings.public_store_url,
    }
    if settings.uid_root:
        env["uid_root"] = settings.uid_root
    if settings.demo:
        env["demo"] = "1"
    return env


def settings_from_env(env: dict[str, str]) -> Settings:
    """The full settings on the worker: locations from ``env``, the secret from its own."""
    if env.get("side") != "promote":
        raise ConfigurationError("a promotion job needs a promotion env (see promotion_env)")
    overrides: dict[str, object] = {
        key: env[key]
        for key in (
            "data_dir",
            "intake_database_url",
            "intake_store",
            "public_database_url",
            "public_store",
            "uid_root",
        )
        if key in env
    }
    if env.get("demo") == "1":
        overrides["demo"] = True
    return load_settings(**overrides)


@dataclass
class PromotionContext:
    """The intake database and store (read) and the public ones (written)."""

    intake_db: Database
    intake_store: BlobStore
    public_db: Database
    public_store: BlobStore
    uid_root: str | None
    secret: str

    @classmethod
    def from_settings(cls, settings: Settings, *, check: bool = True) -> PromotionContext:
        """Open both sides; with ``check``, fail at once if either is unusable."""
        context = cls(
            intake_db=Database.open(settings.intake_db),
            intake_store=make_store(settings.intake_store_url, settings.s3),
            public_db=Database.open(settings.public_db),
            public_store=make_store(settings.public_store_url, settings.s3),
            uid_root=settings.uid_root,
            secret=settings.resolved_secret().get_secret_value(),
        )
        if check:
            try:
                context.check()
            except BaseException:
                context.close()
                raise
        return context

    @classmethod
    def from_env(cls, env: dict[str, str]) -> PromotionContext:
        """The context a promotion job builds where it runs."""
        return cls.from_settings(settings_from_env(env))

    def check(self) -> None:
        """Both databases migrated, the public store writable."""
        self.intake_db.require_schema("intake")
        self.public_db.require_schema("public")
        try:
            self.public_store.check()
        except StorageError as exc:
            raise ConfigurationError(
                f"public blob store {self.public_store.url} is not usable: {exc.message}"
            ) from exc

    def close(self) -> None:
        self.intake_db.close()
        self.public_db.close()
