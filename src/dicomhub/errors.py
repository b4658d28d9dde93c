"""The archive's one exception tree.

Services raise these and never an HTTP or DIMSE specific error; each edge (the
web apps, the DIMSE listener, the CLI) maps them to what its peer understands.
Every class carries the HTTP status, the DIMSE status and a stable machine code
so the mapping lives here and nowhere else.
"""

from __future__ import annotations

from typing import Any


class ArchiveError(Exception):
    """Base of every error the archive reports to a caller.

    Parameters
    ----------
    message:
        One human line saying what went wrong and, where possible, what to do.
    detail:
        Optional structured context (JSON-serialisable) shown to API callers.
    """

    http_status: int = 500
    dimse_status: int = 0xC000  # Cannot understand / processing failure
    code: str = "internal_error"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API caller receives."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class ConfigurationError(ArchiveError):
    """Settings that cannot work; raised at start-up, before anything is served."""

    code = "configuration_error"


class BadRequest(ArchiveError):
    """The caller sent something malformed."""

    http_status = 400
    dimse_status = 0xC000
    code = "bad_request"


class Unauthorized(ArchiveError):
    """No valid credential was presented."""

    http_status = 401
    dimse_status = 0x0124  # Refused: not authorized
    code = "unauthorized"


class Forbidden(ArchiveError):
    """The credential is valid but does not allow this."""

    http_status = 403
    dimse_status = 0x0124
    code = "forbidden"


class NotFound(ArchiveError):
    """The thing asked for does not exist, or the caller may not know it exists."""

    http_status = 404
    dimse_status = 0xC000
    code = "not_found"


class Conflict(ArchiveError):
    """The request contradicts what the archive already holds."""

    http_status = 409
    dimse_status = 0xA900  # Data set does not match SOP class / conflict
    code = "conflict"


class Rejected(ArchiveError):
    """Well-formed input that the archive refuses to accept (e.g. quarantined)."""

    http_status = 422
    dimse_status = 0xC000
    code = "rejected"


class PayloadTooLarge(ArchiveError):
    """A request larger than the configured limit."""

    http_status = 413
    dimse_status = 0xA700
    code = "payload_too_large"


class StorageError(ArchiveError):
    """The blob store could not read or write; nothing was acknowledged."""

    http_status = 503
    dimse_status = 0xA700  # Out of resources
    code = "storage_error"


__all__ = [
    "ArchiveError",
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "Rejected",
    "StorageError",
    "Unauthorized",
]
