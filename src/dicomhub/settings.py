"""One settings object for the whole archive, built explicitly, never at import.

Every embedded default lives under ``data_dir`` (``DICOMHUB_DATA_DIR``), so one
variable moves or isolates a whole instance; each database URL and blob store can
still be set on its own.  The two sides of the wall get *views* of these
settings: :class:`PublicSettings` has no field for the intake database or the
intake store at all, so the public app cannot be handed them by mistake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dicomhub.errors import ConfigurationError

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
STORE_SCHEMES = ("file", "s3")


def _check_database_url(url: str) -> str:
    scheme = url.split(":", 1)[0]
    if scheme not in DATABASE_SCHEMES:
        raise ValueError(
            f"unknown database URL scheme {scheme!r}; use one of {', '.join(DATABASE_SCHEMES)}"
        )
    return url


def _check_store_url(url: str) -> str:
    scheme = url.split(":", 1)[0] if "://" in url else "file"
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            f"unknown store URL scheme {scheme!r}; use file:///path or s3://bucket/prefix"
        )
    return url


class S3Settings(BaseModel):
    """Connection details for an S3-compatible object store (shared by both sides)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None


class PublicSettings(BaseModel):
    """What the public side may know: no intake database, no intake store."""

    data_dir: Path
    database_url: str
    store_url: str
    s3: S3Settings
    secret_key: SecretStr
    host: str
    port: int
    cors_origins: list[str]
    base_url: str
    job_executor: Literal["inprocess", "dask"]
    dask_scheduler: str | None
    ldap: LdapSettings | None
    guest_basket_days: int = 30


class IntakeSettings(BaseModel):
    """What the intake side needs (it may hold PHI)."""

    data_dir: Path
    database_url: str
    store_url: str
    accounts_database_url: str
    s3: S3Settings
    secret_key: SecretStr
    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    dimse_host: str
    dimse_port: int
    dimse_ae_title: str
    job_executor: Literal["inprocess", "dask"]
    dask_scheduler: str | None
    ldap: LdapSettings | None


class LdapSettings(BaseModel):
    """Directory login: users bind as ``user_dn_template.format(username=...)``."""

    url: str
    user_dn_template: str
    default_role: str = "user"


class Settings(BaseSettings):
    """Every setting of a dicomhub instance (environment prefix ``DICOMHUB_``)."""

    model_config = SettingsConfigDict(
        env_prefix="DICOMHUB_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(Path("var"), description="Folder holding every embedded default.")
    demo: bool = Field(False, description="Demo mode: generate missing secrets under data_dir.")
    secret_key: SecretStr | None = Field(
        None, description="Signs sessions and keys token hashes; required outside demo mode."
    )
    uid_root: str | None = Field(None, description="The archive's DICOM UID root for new UIDs.")

    intake_database_url: str | None = Field(None, description="Intake DB (may hold PHI).")
    public_database_url: str | None = Field(None, description="Public DB (released data only).")
    intake_store: str | None = Field(None, description="Intake blobs: file:///path or s3://b/p.")
    public_store: str | None = Field(None, description="Public blobs: file:///path or s3://b/p.")
    s3: S3Settings = Field(default_factory=S3Settings, description="S3 connection details.")

    public_host: str = Field("127.0.0.1", description="Public web bind address.")
    public_port: int = Field(8080, description="Public web port.")
    public_base_url: str | None = Field(None, description="URL the public side is reached at.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS.")
    intake_host: str = Field("127.0.0.1", description="Intake web bind address.")
    intake_port: int = Field(8081, description="Intake web port.")
    intake_tls_cert: Path | None = Field(None, description="PEM certificate for intake HTTPS.")
    intake_tls_key: Path | None = Field(None, description="PEM key for intake HTTPS.")
    dimse_host: str = Field("127.0.0.1", description="DIMSE listener bind address.")
    dimse_port: int = Field(11112, description="DIMSE listener port.")
    dimse_ae_title: str = Field("DICOMHUB", description="The listener's AE title.")

    job_executor: Literal["inprocess", "dask"] = Field(
        "inprocess", description="Where bulk jobs run: in-process threads or dask.distributed."
    )
    dask_scheduler: str | None = Field(None, description="dask scheduler address (tcp://...).")
    ldap: LdapSettings | None = Field(None, description="LDAP login, if any.")
    guest_basket_days: int = Field(30, ge=1, le=3650, description="Days a guest basket lives.")
    log_level: str = Field("INFO", description="Logging level of the servers and CLI.")

    @field_validator("intake_database_url", "public_database_url")
    @classmethod
    def _db_scheme(cls, value: str | None) -> str | None:
        return None if value is None else _check_database_url(value)

    @field_validator("intake_store", "public_store")
    @classmethod
    def _store_scheme(cls, value: str | None) -> str | None:
        return None if value is None else _check_store_url(value)

    @field_validator("dimse_ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        if not 0 < len(value.strip()) <= 16 or "\\" in value:
            raise ValueError("an AE title is 1 to 16 characters without a backslash")
        return value.strip()

    # -- resolved values -------------------------------------------------

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def _sqlite(self, name: str) -> str:
        return f"sqlite:///{self.resolved_data_dir / name}"

    def _file_store(self, name: str) -> str:
        return (self.resolved_data_dir / "blobs" / name).as_uri()

    @property
    def intake_db(self) -> str:
        return self.intake_database_url or self._sqlite("intake.sqlite3")

    @property
    def public_db(self) -> str:
        return self.public_database_url or self._sqlite("public.sqlite3")

    @property
    def intake_store_url(self) -> str:
        return self.intake_store or self._file_store("intake")

    @property
    def public_store_url(self) -> str:
        return self.public_store or self._file_store("public")

    def resolved_secret(self) -> SecretStr:
        """The instance secret; demo mode keeps a generated one under data_dir."""
        if self.secret_key is not None:
            if len(self.secret_key.get_secret_value()) < 16:
                raise ConfigurationError("DICOMHUB_SECRET_KEY must be at least 16 characters")
            return self.secret_key
        if not self.demo:
            raise ConfigurationError(
                "DICOMHUB_SECRET_KEY is not set (required outside demo mode; "
                "set DICOMHUB_DEMO=1 to generate one under the data dir)"
            )
        return SecretStr(_demo_secret(self.resolved_data_dir / "keys" / "secret_key"))

    def resolved_uid_root(self) -> str:
        """The archive's UID root; demo mode keeps a generated one under data_dir."""
        if self.uid_root:
            return self.uid_root
        if not self.demo:
            raise ConfigurationError(
                "DICOMHUB_UID_ROOT is not set (required outside demo mode: the archive's "
                "registered UID root, or 2.25.<UUID as integer>)"
            )
        path = self.resolved_data_dir / "keys" / "uid_root"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_demo_uid_root() + "\n")
        return path.read_text().strip()

    # -- the two views -----------------------------------------------------

    def public(self) -> PublicSettings:
        """The public side's view: no intake database, no intake store."""
        base = self.public_base_url or f"http://{self.public_host}:{self.public_port}"
        return PublicSettings(
            data_dir=self.resolved_data_dir,
            database_url=self.public_db,
            store_url=self.public_store_url,
            s3=self.s3,
            secret_key=self.resolved_secret(),
            host=self.public_host,
            port=self.public_port,
            cors_origins=self.cors_origins,
            base_url=base.rstrip("/"),
            job_executor=self.job_executor,
            dask_scheduler=self.dask_scheduler,
            ldap=self.ldap,
            guest_basket_days=self.guest_basket_days,
        )

    def intake(self) -> IntakeSettings:
        """The intake side's view; accounts are read from the public database."""
        return IntakeSettings(
            data_dir=self.resolved_data_dir,
            database_url=self.intake_db,
            store_url=self.intake_store_url,
            accounts_database_url=self.public_db,
            s3=self.s3,
            secret_key=self.resolved_secret(),
            host=self.intake_host,
            port=self.intake_port,
            tls_cert=self.intake_tls_cert,
            tls_key=self.intake_tls_key,
            dimse_host=self.dimse_host,
            dimse_port=self.dimse_port,
            dimse_ae_title=self.dimse_ae_title,
            job_executor=self.job_executor,
            dask_scheduler=self.dask_scheduler,
            ldap=self.ldap,
        )


def _demo_secret(path: Path) -> str:
    """Read, or create with mode 0600, the demo instance's generated secret."""
    if path.exists():
        return path.read_text().strip()
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _demo_uid_root() -> str:
    """A ``2.25`` root from a UUIDv8 whose high custom bits are zero.

    RFC 9562 lets a v8 UUID's custom bits be anything; keeping the top 48 at zero
    gives a ~24-digit integer, so the root leaves room for the 20+ digits that
    keyed UID hashing needs under the 64-character limit.
    """
    import secrets

    value = (0x8 << 76) | (secrets.randbits(12) << 64) | (0b10 << 62) | secrets.randbits(62)
    return f"2.25.{value}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and overrides), failing with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigurationError(
            f"invalid setting DICOMHUB_{where.upper()}: {first['msg']}"
        ) from exc


PublicSettings.model_rebuild()
IntakeSettings.model_rebuild()
