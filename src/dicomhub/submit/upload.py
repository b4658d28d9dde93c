"""The STOW-RS client: batches of de-identified files over HTTPS, with retries and backoff.

A batch is one ``multipart/related; type="application/dicom"`` request streamed from the
files on disk (never held in memory). Transient failures (connection refused or dropped,
timeouts, 5xx, 429) are retried with exponential backoff and jitter; the caller learns the
per-instance answer from the Store Instances Response (PS3.18 10.5.3): what was stored,
what failed and why. A credential the intake refuses stops the run at once.
"""

from __future__ import annotations

import logging
import random
import secrets
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dicomhub.errors import ArchiveError, Unauthorized

LOGGER = logging.getLogger(__name__)
CHUNK = 1024 * 1024
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class UploadError(ArchiveError):
    """A batch could not be delivered after every retry; nothing is lost, rerun to resume."""

    http_status = 502
    code = "upload_failed"


@dataclass(frozen=True)
class Part:
    """One instance to send: its state row id, SOP Instance UID and file."""

    file_id: int
    sop_uid: str
    path: Path
    size: int


@dataclass
class BatchResult:
    """The intake's answer for one batch, per SOP Instance UID."""

    stored: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    attempts: int = 1


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """TLS context trusting the kit's CA bundle (PEM text) or, without one, the system CAs."""
    if ca_bundle:
        return ssl.create_default_context(cadata=ca_bundle)
    return ssl.create_default_context()


def make_client(
    base_url: str, token: str, ca_bundle: str | None, *, timeout: float = 60.0
) -> httpx.Client:
    """An HTTPS client for the intake, sending the kit's bearer credential."""
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "dicomhub-submit"},
        verify=ssl_context(ca_bundle),
        timeout=httpx.Timeout(timeout, connect=10.0),
    )


class StowClient:
    """Send batches to ``POST {intake}/dicomweb/studies``.

    Parameters
    ----------
    client:
        From :func:`make_client`.
    retries:
        Further attempts after the first for a transient failure.
    backoff:
        First delay in seconds; doubled each attempt (capped at ``max_delay``), with jitter.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        retries: int = 5,
        backoff: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay
        self.sleep = sleep

    def store(self, parts: Sequence[Part]) -> BatchResult:
        """Deliver one batch; raise :class:`UploadError` once retries are exhausted."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
                self.sleep(delay * (0.5 + random.random() / 2))
            try:
                response = self._post(parts)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                LOGGER.warning("batch of %d: %s (attempt %d)", len(parts), last, attempt + 1)
                continue
            if response.status_code in RETRY_STATUSES:
                last = f"HTTP {response.status_code}"
                LOGGER.warning("batch of %d: %s (attempt %d)", len(parts), last, attempt + 1)
                continue
            result = self._answer(response, parts)
            result.attempts = attempt + 1
            return result
        raise UploadError(
            f"the intake did not take a batch of {len(parts)} after {self.retries + 1} "
            f"attempts ({last}); run the same command again to resume"
        )

    def _post(self, parts: Sequence[Part]) -> httpx.Response:
        boundary = "dicomhub-" + secrets.token_hex(16)
        heads = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() for _ in parts]
        tail = f"--{boundary}--\r\n".encode()
        length = sum(len(h) + p.size + 2 for h, p in zip(heads, parts, strict=True)) + len(tail)
        return self.client.post(
            "/dicomweb/studies",
            content=_body(heads, parts, tail),
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Content-Length": str(length),
                "Accept": "application/dicom+json",
            },
        )

    def _answer(self, response: httpx.Response, parts: Sequence[Part]) -> BatchResult:
        status = response.status_code
        if status in (401, 403):
            raise Unauthorized(
                f"the intake refused the kit's credential (HTTP {status}): "
                f"{_message(response)}; ask the archive for a new kit"
            )
        if status not in (200, 202, 409):
            raise UploadError(f"the intake answered HTTP {status}: {_message(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise UploadError(f"the intake's HTTP {status} answer is not DICOM JSON") from exc
        result = BatchResult()
        for item in _items(body, REFERENCED_SOP_SEQUENCE):
            uid = _value(item, REFERENCED_SOP_INSTANCE_UID)
            if uid:
                result.stored.add(uid)
                if warn := _value(item, WARNING_REASON):
                    result.warnings[uid] = warn
        for item in _items(body, FAILED_SOP_SEQUENCE):
            uid = _value(item, REFERENCED_SOP_INSTANCE_UID)
            if uid:
                result.failed[uid] = _value(item, FAILURE_REASON) or "unknown"
        missing = {p.sop_uid for p in parts} - result.stored - set(result.failed)
        for uid in missing:
            result.failed[uid] = "not in the intake's answer"
        return result


def _body(heads: list[bytes], parts: Sequence[Part], tail: bytes) -> Iterator[bytes]:
    """The multipart body in chunks of about :data:`CHUNK` bytes.

    Part headers and the CRLF after each file are joined to the file bytes instead of
    being yielded alone: every chunk becomes at least one TLS record and one send, and a
    2-byte record per instance costs more than the copy.
    """
    pending: list[bytes] = []
    size = 0
    for head, part in zip(heads, parts, strict=True):
        pending.append(head)
        size += len(head)
        with part.path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                pending.append(chunk)
                size += len(chunk)
                if size >= CHUNK:
                    yield b"".join(pending)
                    pending, size = [], 0
        pending.append(b"\r\n")
        size += 2
    pending.append(tail)
    yield b"".join(pending)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)[:200]
    return str(body)[:200]


def _items(body: Any, tag: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    element = body.get(tag)
    if not isinstance(element, dict):
        return []
    value = element.get("Value")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _value(item: dict[str, Any], tag: str) -> str:
    element = item.get(tag)
    if not isinstance(element, dict):
        return ""
    value = element.get("Value")
    if isinstance(value, list) and value:
        return str(value[0])
    return ""
