"""Reading a ``.tcia`` manifest without trusting it.

NBIA writes six header lines (``downloadServerUrl=`` first, ``ListOfSeriesToDownload=``
last), then one SeriesInstanceUID per line, every line ending in a newline.
Real files also arrive hand-edited, cut short by a browser, or as some other
file entirely, so the reader says which of those it is instead of guessing:

* empty, binary or not a manifest at all: :class:`ManifestError` before anything runs;
* a header that stops before ``ListOfSeriesToDownload=``: truncated, refused;
* a plain list of UIDs (tcia_utils accepts those too): read, with no server named;
* malformed and duplicated UID lines: reported per line, never sent to the server.

Entries are yielded one at a time, so a 100,000-line manifest is never held in memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dicomhub.errors import BadRequest

LOGGER = logging.getLogger(__name__)

SERVLET_PATH = "/nbia-download/servlet/DownloadServlet"
LIST_KEY = "listofseriestodownload"
HEADER_KEYS = frozenset(
    {
        "downloadserverurl",
        "includeannotation",
        "noofrretry",
        "databasketid",
        "manifestversion",
        LIST_KEY,
        "datatype",
    }
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_MAX_LINE = 4096
_PROBE = 64 * 1024


class ManifestError(BadRequest):
    """The file given as SOURCE is not a readable ``.tcia`` manifest."""

    code = "bad_manifest"


def valid_uid(value: str) -> bool:
    """A DICOM UID: dotted decimal components without leading zeros, at most 64 characters."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def server_of(download_server_url: str) -> str:
    """The base URL of the archive that wrote a manifest (its servlet path removed)."""
    parts = urlsplit(download_server_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ManifestError(f"downloadServerUrl is not an http(s) URL: {download_server_url!r}")
    path = parts.path
    cut = path.lower().find(SERVLET_PATH.lower())
    if cut >= 0:
        path = path[:cut]
    return f"{parts.scheme}://{parts.netloc}{path.rstrip('/')}"


@dataclass(frozen=True)
class Header:
    """What the header says; every field is None for a plain list of UIDs."""

    download_server_url: str | None = None
    databasket_id: str | None = None
    retries: int | None = None
    include_annotation: bool = False
    version: str | None = None
    body_line: int = 1  # the line number of the first UID line

    @property
    def server(self) -> str | None:
        """The base URL of the archive named by ``downloadServerUrl``."""
        return None if self.download_server_url is None else server_of(self.download_server_url)


@dataclass(frozen=True)
class Entry:
    """One UID line: its number, its text and whether it is a valid UID."""

    line: int
    text: str
    valid: bool


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(number, text without its line end, whether it ended in a newline)."""
    with path.open("r", encoding="utf-8", errors="strict", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            ended = raw.endswith(("\n", "\r"))
            yield number, raw.rstrip("\r\n"), ended


def _probe(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_PROBE)
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ManifestError(f"{path} is a folder, not a .tcia manifest") from None
    except PermissionError:
        raise ManifestError(f"{path} cannot be read (permission denied)") from None


def read_header(path: Path) -> Header:
    """Check that ``path`` is a manifest (or a plain UID list) and read its header.

    Raises
    ------
    ManifestError
        Empty, binary, not UTF-8, not a manifest, or a header cut short.
    """
    start = _probe(path)
    if not start.strip():
        raise ManifestError(f"{path} is empty; a .tcia manifest starts with downloadServerUrl=")
    if b"\0" in start:
        raise ManifestError(f"{path} is a binary file, not a .tcia manifest")
    try:
        first = start.decode("utf-8").lstrip("\ufeff").splitlines()[0].strip()
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text, so not a .tcia manifest") from None
    if first.lower().startswith("downloadserverurl="):
        return _read_keyed_header(path)
    if valid_uid(first):
        LOGGER.warning("%s has no header: read as a plain list of SeriesInstanceUIDs", path)
        return Header()
    raise ManifestError(
        f"{path} is not a .tcia manifest: its first line is neither downloadServerUrl=... "
        "nor a SeriesInstanceUID"
    )


def _read_keyed_header(path: Path) -> Header:
    values: dict[str, str] = {}
    try:
        for number, text, _ended in _lines(path):
            key, sep, value = text.lstrip("\ufeff").partition("=")
            key = key.strip().lower()
            if not sep or key not in HEADER_KEYS:
                raise ManifestError(
                    f"{path} line {number}: expected a header line (key=value) before "
                    f"ListOfSeriesToDownload=, got {text[:60]!r}"
                )
            if key == LIST_KEY:
                return _header(values, number + 1)
            values[key] = value.strip()
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text, so not a .tcia manifest") from None
    raise ManifestError(
        f"{path} is truncated: its header ends without a ListOfSeriesToDownload= line"
    )


def _header(values: dict[str, str], body_line: int) -> Header:
    retries: int | None = None
    raw = values.get("noofrretry", "")
    if raw.isdigit():
        retries = int(raw)
    url = values.get("downloadserverurl") or None
    if url is not None:
        server_of(url)  # validates
    return Header(
        download_server_url=url,
        databasket_id=values.get("databasketid") or None,
        retries=retries,
        include_annotation=values.get("includeannotation", "").lower() == "true",
        version=values.get("manifestversion") or None,
        body_line=body_line,
    )


def entries(path: Path, header: Header) -> Iterator[Entry]:
    """The UID lines of the manifest, blank lines skipped, each checked as a UID."""
    try:
        for number, text, ended in _lines(path):
            if number < header.body_line:
                continue
            value = text.strip().lstrip("\ufeff")
            if not value:
                continue
            if not ended:
                LOGGER.warning("%s: the last line has no newline; the file may be cut short", path)
            yield Entry(number, value[:_MAX_LINE], valid_uid(value))
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text past its header") from None


__all__ = [
    "Entry",
    "Header",
    "ManifestError",
    "entries",
    "read_header",
    "server_of",
    "valid_uid",
]
