"""The server as the downloader sees it: NBIA's v4 REST API, plus dicomhub's own where present.

Everything the downloader needs works on any NBIA-compatible server:
``POST getSeriesMetadata`` (where each series lives, how many images, how many
bytes), ``GET getImageWithMD5Hash`` (a zip of the series with
``md5hashes.csv``), ``GET getSeries?Collection=`` and ``/nbia-api/oauth/token``.
On a dicomhub server a few things are cheaper through its JSON API (a
collection's UIDs as a streamed manifest, the caller's basket), and images
come through its bulk API (``GET /api/download`` says it is there): many
series per request, as one tar with a SHA-256 per file.

Transient failures (timeouts, dropped connections, 429 and 5xx) are retried
with exponential backoff and full jitter; anything else is an answer.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from dicomhub.download.auth import BearerAuth, TokenSource
from dicomhub.errors import ArchiveError, Forbidden, NotFound, Unauthorized

LOGGER = logging.getLogger(__name__)

NBIA_V4 = "/nbia-api/services/v4/"
BULK_PROBE = "/api/download"
BULK_STREAM = "/api/download/stream"
BULK_PROTOCOL = "dicomhub-bulk/1"
METADATA_BATCH = 1000
T = TypeVar("T")


class Transient(ArchiveError):
    """A failure worth trying again (timeout, dropped connection, 5xx, 429)."""

    code = "transient"


class ServerError(ArchiveError):
    """The server gave an answer the downloader cannot use."""

    code = "server_error"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to try again."""

    retries: int = 4
    backoff: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: ``backoff * 2**attempt`` scaled by 0.5-1.5."""
        return float(min(self.cap, self.backoff * 2.0**attempt)) * random.uniform(0.5, 1.5)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient | httpx.TransportError)


def with_retries(policy: RetryPolicy, what: str, call: Callable[[], T]) -> T:
    """``call()``, retried on transient failures; the last failure is raised."""
    for attempt in range(policy.retries + 1):
        try:
            return call()
        except (Transient, httpx.TransportError) as exc:
            if attempt >= policy.retries:
                raise Transient(f"{what} failed {attempt + 1} times: {describe(exc)}") from exc
            wait = policy.delay(attempt)
            LOGGER.info("%s failed (%s); retrying in %.1fs", what, describe(exc), wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def describe(exc: BaseException) -> str:
    """One short line for a failure (httpx's messages can be empty)."""
    if isinstance(exc, ArchiveError):
        return exc.message
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def check_status(response: httpx.Response, what: str) -> None:
    """Raise the right error for a non-200 answer (the body must not be read yet for streams)."""
    status = response.status_code
    if status == 200:
        return
    if status == 429 or status >= 500:
        raise Transient(f"{what}: the server answered {status}")
    if status == 401:
        raise Unauthorized(f"{what}: the server wants a valid credential (401); use --token")
    if status == 403:
        raise Forbidden(f"{what}: not allowed for this credential (403)")
    if status == 404:
        raise NotFound(f"{what}: not found (404)")
    raise ServerError(f"{what}: the server answered {status}")


class Server:
    """One archive, reached over one pooled HTTP client shared by the worker threads."""

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource | None = None,
        workers: int = 8,
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=BearerAuth(token) if token is not None else None,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=workers + 4, max_keepalive_connections=workers + 4),
            follow_redirects=True,
            verify=verify,
            headers={"User-Agent": "dicomhub-download"},
        )
        self.is_dicomhub = False
        self.api_token_ok = True
        #: The server offers dicomhub's bulk download API (many series per request).
        self.bulk = False
        self.bulk_max_series = 0
        #: False forces NBIA's one-series-per-request path even on a dicomhub server.
        self.allow_bulk = True

    def close(self) -> None:
        self.http.close()

    def probe(self) -> str:
        """Check the server answers; note whether it is dicomhub. Returns who we are there."""

        def ask() -> httpx.Response:
            answer = self.http.get("/api/me")
            if answer.status_code >= 500:
                raise Transient(f"{self.base_url}/api/me answered {answer.status_code}")
            return answer

        try:
            answer = with_retries(self.policy, f"reaching {self.base_url}", ask)
            if answer.status_code == 401:
                # dicomhub's JSON API takes its own tokens only; an NBIA OAuth token is
                # still good on the NBIA routes, so only the JSON API is given up.
                self.api_token_ok = False
                answer = with_retries(
                    self.policy, f"reaching {self.base_url}",
                    lambda: self.http.get("/api/me", auth=None),
                )  # fmt: skip
        except Transient as exc:
            raise ServerError(f"cannot reach {self.base_url}: {exc.message}") from exc
        if answer.status_code == 200 and "json" in answer.headers.get("content-type", ""):
            body = answer.json()
            if isinstance(body, dict) and "anonymous" in body:
                self.is_dicomhub = True
                if self.allow_bulk and self.api_token_ok:
                    self._probe_bulk()
                return "guest" if body.get("anonymous") else str(body.get("username"))
        return "unknown"

    def _probe_bulk(self) -> None:
        """Use the bulk API if this dicomhub server has it (older ones do not)."""

        def ask() -> httpx.Response:
            answer = self.http.get(BULK_PROBE)
            if answer.status_code >= 500:
                raise Transient(f"{BULK_PROBE} answered {answer.status_code}")
            return answer

        answer = with_retries(self.policy, BULK_PROBE, ask)
        if answer.status_code != 200 or "json" not in answer.headers.get("content-type", ""):
            return
        body = answer.json()
        if isinstance(body, dict) and body.get("protocol") == BULK_PROTOCOL:
            self.bulk = True
            self.bulk_max_series = max(1, int(body.get("max_series") or 1))

    # -- listings ---------------------------------------------------------------------

    def series_metadata(self, uids: Sequence[str]) -> list[dict[str, str]]:
        """NBIA's getSeriesMetadata rows for ``uids`` (series not returned are not visible)."""

        def ask() -> list[dict[str, str]]:
            answer = self.http.post(
                NBIA_V4 + "getSeriesMetadata", data={"list": ",".join(uids), "format": "csv"}
            )
            if answer.status_code == 400 and "no series" in answer.text.lower():
                return []
            check_status(answer, "getSeriesMetadata")
            if not answer.content.strip():
                return []
            return list(csv.DictReader(answer.text.splitlines()))

        return with_retries(self.policy, "getSeriesMetadata", ask)

    def collection_uids(self, name: str) -> Iterator[str]:
        """Every SeriesInstanceUID of a collection the caller may see."""
        if self.is_dicomhub and self.api_token_ok:
            yield from self._manifest_lines("/api/search/manifest.tcia", {"collection": name})
            return

        def ask() -> list[Any]:
            answer = self.http.get(NBIA_V4 + "getSeries", params={"Collection": name})
            check_status(answer, f"getSeries?Collection={name}")
            return answer.json() if answer.content.strip() else []

        for row in with_retries(self.policy, "getSeries", ask):
            if isinstance(row, Mapping) and row.get("SeriesInstanceUID"):
                yield str(row["SeriesInstanceUID"])

    def basket_uids(self) -> Iterator[str]:
        """The UIDs of the credential owner's basket (dicomhub only)."""
        if not self.is_dicomhub:
            raise ServerError(f"{self.base_url} is not a dicomhub server: it has no basket API")
        if not self.api_token_ok:
            raise Unauthorized("a basket needs a dicomhub API token: --token dh_...")
        yield from self._manifest_lines("/api/basket/manifest.tcia", {})

    def basket_id_uids(self, basket_id: int) -> Iterator[str]:
        """The UIDs of basket ``basket_id``: the owner's whole basket, or a shared one (dicomhub).

        The server answers 404 alike for a basket that does not exist and one
        that is neither the caller's nor shared, so a wrong id or a missing
        credential look the same; the message says both.
        """
        if not self.is_dicomhub:
            raise ServerError(f"{self.base_url} is not a dicomhub server: it has no basket API")
        path = f"/api/baskets/{basket_id}/manifest.tcia"
        try:
            yield from self._manifest_lines(path, {})
        except NotFound:
            raise NotFound(
                f"basket {basket_id} was not found, is empty, or is not yours: "
                "give the owner's --token (or check the id)"
            ) from None

    def _manifest_lines(self, path: str, params: Mapping[str, str]) -> Iterator[str]:
        def ask() -> list[str]:
            answer = self.http.get(path, params=dict(params))
            check_status(answer, path)
            return answer.text.splitlines()

        lines = with_retries(self.policy, path, ask)
        for index, line in enumerate(lines):
            if line.strip().lower() == "listofseriestodownload=":
                yield from (uid.strip() for uid in lines[index + 1 :] if uid.strip())
                return
        raise ServerError(f"{path} did not answer a .tcia manifest")

    # -- images -------------------------------------------------------------------------

    @contextmanager
    def series_stream(self, uids: Sequence[str]) -> Iterator[httpx.Response]:
        """The streamed tar of ``uids`` from dicomhub's bulk API (status checked)."""
        with self.http.stream("POST", BULK_STREAM, json={"series": list(uids)}) as answer:
            if answer.status_code != 200:
                answer.read()
            check_status(answer, f"a stream of {len(uids)} series")
            yield answer

    @contextmanager
    def series_zip(self, uid: str) -> Iterator[httpx.Response]:
        """The streamed ``getImageWithMD5Hash`` answer for one series (status checked)."""
        with self.http.stream(
            "GET", NBIA_V4 + "getImageWithMD5Hash", params={"SeriesInstanceUID": uid}
        ) as answer:
            if answer.status_code != 200:
                answer.read()
            check_status(answer, f"series {uid}")
            yield answer


__all__ = [
    "METADATA_BATCH",
    "RetryPolicy",
    "Server",
    "ServerError",
    "Transient",
    "check_status",
    "describe",
    "is_transient",
    "with_retries",
]
