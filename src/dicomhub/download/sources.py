"""What SOURCE names: a ``.tcia`` manifest file, a basket (yours, or one by id), or a collection.

Each resolves to the server to ask and an iterator of manifest entries
(line number, text, whether it is a UID), so the planner treats them alike
and nothing holds the whole list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dicomhub.download.client import Server
from dicomhub.download.manifest import Entry, Header, ManifestError, entries, read_header, valid_uid
from dicomhub.errors import BadRequest

BASKET = "basket"
BASKET_ID = "basket-id"
_MAX_BASKET_DIGITS = 12


@dataclass(frozen=True)
class Source:
    """A resolved SOURCE: its kind, its text and, for a manifest, its header."""

    kind: str  # "manifest", "basket", "basket-id" or "collection"
    text: str
    path: Path | None = None
    header: Header | None = None

    @property
    def label(self) -> str:
        if self.kind == "manifest":
            return f"manifest {self.path}"
        if self.kind == BASKET_ID:
            return f"basket {self.text}"
        return "your basket" if self.kind == BASKET else f"collection {self.text}"

    def entries(self, server: Server) -> Iterator[Entry]:
        """The entries to plan, one at a time."""
        if self.kind == "manifest":
            assert self.path is not None
            assert self.header is not None
            yield from entries(self.path, self.header)
            return
        if self.kind == BASKET_ID:
            uids = server.basket_id_uids(int(self.text))
        elif self.kind == BASKET:
            uids = server.basket_uids()
        else:
            uids = server.collection_uids(self.text)
        for number, uid in enumerate(uids, start=1):
            yield Entry(number, uid, valid_uid(uid))


def parse_source(text: str) -> Source:
    """Decide what SOURCE is: an existing file (or ``*.tcia``), ``basket``, a basket id, or a
    collection.

    A basket id is a positive integer, alone or as ``basket:<id>`` (use
    ``collection:<name>`` for a collection whose name is only digits).
    """
    value = text.strip()
    if not value:
        raise BadRequest("SOURCE is empty: give a .tcia file, 'basket' or a collection name")
    path = Path(value).expanduser()
    if path.exists() or value.lower().endswith(".tcia"):
        return Source("manifest", value, path, read_header(path))
    if value.lower() == BASKET:
        return Source(BASKET, value)
    if value.lower().startswith("basket:") or value.isdigit():
        ident = value.split(":", 1)[1].strip() if ":" in value else value
        if not (ident.isascii() and ident.isdigit() and 0 < len(ident) <= _MAX_BASKET_DIGITS):
            raise BadRequest(f"{text!r}: a basket id is a positive integer")
        if int(ident) == 0:
            raise BadRequest(f"{text!r}: a basket id is a positive integer")
        return Source(BASKET_ID, str(int(ident)))
    if value.lower().startswith("collection:"):
        value = value.split(":", 1)[1].strip()
    if "/" in value or len(value) > 128:
        raise BadRequest(f"{text!r} is neither an existing file nor a collection name")
    return Source("collection", value)


def _origin(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url.rstrip("/"))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{port}", parts.path


def choose_server(source: Source, server: str | None) -> str:
    """The base URL to use: ``--server``, else the manifest's; refuse a mismatch."""
    named = source.header.server if source.header is not None else None
    if server is not None:
        if urlsplit(server).scheme not in ("http", "https"):
            raise BadRequest(f"--server must be an http(s) URL, got {server!r}")
        if named is not None and _origin(named) != _origin(server):
            raise ManifestError(
                f"{source.path} was made by {named}, not by {server.rstrip('/')}; "
                "its series live there. Omit --server to download from the manifest's server."
            )
        return server.rstrip("/")
    if named is None:
        raise BadRequest(f"{source.label} names no server: give --server URL")
    return named


__all__ = ["BASKET", "BASKET_ID", "Source", "choose_server", "parse_source"]
