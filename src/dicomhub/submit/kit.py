"""The submission kit: everything a site needs to de-identify and send one collection.

The archive makes a kit for one collection and site (``dicomhub kits create``); the site
runs ``dicomhub submit`` with it. A kit is one JSON file::

    {"format": "dicomhub-kit/1", "kit": {...}, "sha256": "...", "signature": "..."}

``sha256`` seals the canonical JSON of ``kit``: a kit that was edited by hand or damaged
in transit is refused on load, before a single file is read. ``signature`` is an
HMAC-SHA-256 of the same bytes under the archive's secret key, which only the archive
can check (:func:`verify_signature`); the site cannot forge a kit the archive would
accept, and the recipe hash stamped into every instance ties the data to the kit.

The kit holds a credential and the UID secret, so it is written with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from dicomhub.core.deid import Recipe
from dicomhub.errors import BadRequest

FORMAT = "dicomhub-kit/1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Secondary Capture SOP classes: screenshots and scanned documents, pixels often annotated.
SECONDARY_CAPTURE_CLASSES: tuple[str, ...] = (
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
)


class KitError(BadRequest):
    """A kit that cannot be used: unreadable, tampered, expired or invalid."""

    code = "bad_kit"


class BurnedInRules(BaseModel):
    """Header rules of the burned-in pixel filter; a match is quarantined, never sent.

    ``trust_burned_in_no``: an image of a risky modality passes only when its
    BurnedInAnnotation says ``NO`` (the flag) and the kit trusts that flag.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    risky_modalities: tuple[str, ...] = ("US", "OT", "SC", "DOC", "XC", "ES")
    trust_burned_in_no: bool = True
    image_types: tuple[str, ...] = ("SCREEN SAVE", "SECONDARY")
    sop_classes: tuple[str, ...] = SECONDARY_CAPTURE_CLASSES
    manufacturers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


class IdMapTemplate(BaseModel):
    """How the site's ID map looks: its columns and the archive IDs the archive suggests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: tuple[str, str, str] = (
        "submitter_patient_id",
        "archive_patient_id",
        "archive_patient_name",
    )
    archive_id_pattern: str = "{collection}-{site}-{n:04d}"


class KitBody(BaseModel):
    """The sealed part of a kit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kit_id: str = Field(min_length=1, max_length=64)
    collection: str
    site: str
    created_at: datetime
    expires_at: datetime | None = None
    intake_url: str
    intake_ae_title: str = "DICOMHUB"
    #: ClinicalTrialSponsorName written into every instance; None: the collection's name.
    sponsor: str | None = Field(default=None, min_length=1, max_length=64)
    credential: SecretStr
    ca_bundle: str | None = None
    uid_secret: SecretStr
    recipe: dict[str, Any]
    burned_in: BurnedInRules = Field(default_factory=BurnedInRules)
    idmap: IdMapTemplate = Field(default_factory=IdMapTemplate)

    @field_validator("collection", "site")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use 1-64 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("intake_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the intake URL must be https:// (data never leaves unencrypted)")
        return value.rstrip("/")


class Kit:
    """A loaded, checked kit and the recipe it makes."""

    def __init__(self, body: KitBody, *, payload: bytes, signature: str) -> None:
        self.body = body
        self.payload = payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        self.signature = signature
        self._recipe: Recipe | None = None

    @property
    def kit_id(self) -> str:
        return self.body.kit_id

    @property
    def collection(self) -> str:
        return self.body.collection

    @property
    def site(self) -> str:
        return self.body.site

    def recipe(self) -> Recipe:
        """The de-identification recipe (with the UID secret) this kit prescribes."""
        if self._recipe is None:
            fields = {**self.body.recipe, "kit_id": self.body.kit_id}
            try:
                self._recipe = Recipe(uid_secret=self.body.uid_secret, **fields)
            except ValidationError as exc:
                raise KitError(f"the kit's recipe is invalid: {_first(exc)}") from exc
        return self._recipe

    def suggested_archive_id(self, n: int) -> str:
        """The n-th archive PatientID the kit's template suggests (1-based)."""
        return self.body.idmap.archive_id_pattern.format(
            collection=self.collection, site=self.site, n=n
        )


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def _plain(body: KitBody) -> dict[str, Any]:
    data = body.model_dump(mode="json")
    data["credential"] = body.credential.get_secret_value()
    data["uid_secret"] = body.uid_secret.get_secret_value()
    return data


def canonical(data: dict[str, Any]) -> bytes:
    """Sorted-key, whitespace-free JSON: the bytes that are sealed and signed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(body: KitBody, secret_key: str) -> dict[str, Any]:
    """The kit document for ``body``: sealed with sha256, signed with the archive key."""
    data = _plain(body)
    payload = canonical(data)
    return {
        "format": FORMAT,
        "kit": data,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "signature": _mac(payload, secret_key),
    }


def _mac(payload: bytes, secret_key: str) -> str:
    key = hmac.new(secret_key.encode(), b"dicomhub kit signing key", hashlib.sha256).digest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def write_kit(path: Path, body: KitBody, secret_key: str) -> Path:
    """Write a signed kit file with mode 0600 (it holds a credential); never overwrite."""
    document = sign(body, secret_key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def parse_kit(text: str | bytes, *, now: datetime | None = None, source: str = "kit") -> Kit:
    """Check and load a kit document; :class:`KitError` says exactly what is wrong."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KitError(
            f"{source} is not a kit: it is not valid JSON (corrupt or truncated?)"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KitError(f"{source} is not a kit: expected format {FORMAT!r}")
    data, seal = document.get("kit"), document.get("sha256")
    if not isinstance(data, dict) or not isinstance(seal, str):
        raise KitError(f"{source} is damaged: its kit body or checksum is missing")
    payload = canonical(data)
    actual = hashlib.sha256(payload).hexdigest()
    if not hmac.compare_digest(actual, seal):
        raise KitError(
            f"{source} has been modified or is corrupt (checksum mismatch); "
            "ask the archive for a fresh kit instead of editing it"
        )
    try:
        body = KitBody.model_validate(data)
    except ValidationError as exc:
        raise KitError(f"{source} is invalid: {_first(exc)}") from exc
    now = now or datetime.now(UTC)
    if body.expires_at is not None and _aware(body.expires_at) <= now:
        raise KitError(
            f"{source} expired on {body.expires_at:%Y-%m-%d}; ask the archive for a new kit"
        )
    kit = Kit(body, payload=payload, signature=str(document.get("signature", "")))
    kit.recipe()
    return kit


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def load_kit(path: Path, *, now: datetime | None = None) -> Kit:
    """Read and check a kit file."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise KitError(f"cannot read the kit {path}: {exc.strerror}") from exc
    return parse_kit(text, now=now, source=f"the kit {path}")


def verify_signature(kit: Kit, secret_key: str) -> bool:
    """True if the archive holding ``secret_key`` signed this kit (archive side only)."""
    return hmac.compare_digest(_mac(kit.payload, secret_key), kit.signature)


def derive(secret_key: str, *parts: str) -> bytes:
    """A value derived from the archive secret for one purpose (and collection, site)."""
    message = "\x00".join(("dicomhub", *parts)).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).digest()


def default_date_offset(secret_key: str, collection: str, site: str) -> int:
    """A stable offset in [-3650, -1826] days (5 to 10 years back) for one collection and site.

    Derived, not random, so a kit issued again for the same site shifts dates the same way.
    """
    value = int.from_bytes(derive(secret_key, "date-offset", collection, site)[:4], "big")
    return -(1826 + value % (3650 - 1826 + 1))


def build_kit(
    *,
    collection: str,
    site: str,
    intake_url: str,
    credential: str,
    secret_key: str,
    uid_root: str,
    date_offset_days: int | None = None,
    ca_bundle: str | None = None,
    expires_at: datetime | None = None,
    recipe: dict[str, Any] | None = None,
    burned_in: BurnedInRules | None = None,
    intake_ae_title: str = "DICOMHUB",
    sponsor: str | None = None,
    now: datetime | None = None,
) -> KitBody:
    """The body of a new kit (archive side): secrets derived from the archive's key.

    The UID secret is one per collection (derived from the archive secret), so every
    site of a collection maps a UID the same way and references across sites resolve.
    """
    now = now or datetime.now(UTC)
    offset = (
        default_date_offset(secret_key, collection, site)
        if date_offset_days is None
        else date_offset_days
    )
    rules = dict(recipe or {})
    rules.setdefault("retain_long_modified_dates", True)
    rules["uid_root"] = uid_root
    rules["date_offset_days"] = offset
    rules.pop("kit_id", None)
    rules.pop("uid_secret", None)
    tag = hashlib.sha256(os.urandom(16)).hexdigest()[:6]
    kit_id = f"{collection}-{site}-{now:%Y%m%d}-{tag}"[-64:]
    try:
        body = KitBody(
            kit_id=kit_id,
            collection=collection,
            site=site,
            created_at=now,
            expires_at=expires_at,
            intake_url=intake_url,
            intake_ae_title=intake_ae_title,
            sponsor=sponsor,
            credential=SecretStr(credential),
            ca_bundle=ca_bundle,
            uid_secret=SecretStr(derive(secret_key, "uid-secret", collection).hex()),
            recipe=rules,
            burned_in=burned_in or BurnedInRules(),
        )
    except ValidationError as exc:
        raise KitError(f"cannot make the kit: {_first(exc)}") from exc
    Kit(body, payload=canonical(_plain(body)), signature="").recipe()
    return body
