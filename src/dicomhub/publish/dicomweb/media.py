"""Content negotiation and multipart/related bodies for WADO-RS (PS3.18 §8.7, §8.6).

An ``Accept`` header is a list of media ranges; for DICOM the ones that
matter are ``multipart/related; type="application/dicom"`` with an optional
``transfer-syntax`` (``*`` means "as stored").  Without a transfer syntax the
default is Explicit VR Little Endian, as PS3.18 §8.7.3.5 requires.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.errors import ArchiveError

EXPLICIT_LE = str(ExplicitVRLittleEndian)
IMPLICIT_LE = str(ImplicitVRLittleEndian)
ANY = "*"
#: The little-endian uncompressed transfer syntaxes the archive can rewrite an instance in.
NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
#: Compressed frame media types by transfer syntax (PS3.18 Table 8.7.3-2).
FRAME_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class NotAcceptable(ArchiveError):
    """No representation the client accepts can be made (406)."""

    http_status = 406
    code = "not_acceptable"


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    media_type: str
    part_type: str | None
    transfer_syntax: str | None
    quality: float


_PARAM = re.compile(r';\s*([A-Za-z-]+)\s*=\s*("[^"]*"|[^;,]*)')


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, best first (``*/*`` if absent)."""
    if header is None or not header.strip():
        return [MediaRange("*/*", None, None, 1.0)]
    ranges = []
    for entry in _split(header):
        media_type = entry.split(";", 1)[0].strip().lower()
        params = {k.lower(): v.strip().strip('"') for k, v in _PARAM.findall(entry)}
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        part = params.get("type")
        ranges.append(
            MediaRange(
                media_type, part.lower() if part else None, params.get("transfer-syntax"), quality
            )
        )
    return sorted((r for r in ranges if r.quality > 0), key=lambda r: -r.quality)


def _split(header: str) -> Iterator[str]:
    """Split on commas outside quotes."""
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield "".join(current)
            current = []
        else:
            current.append(char)
    if current:
        yield "".join(current)


def dicom_syntaxes(ranges: Iterable[MediaRange]) -> list[str]:
    """Transfer syntaxes acceptable for ``application/dicom`` parts, in preference order."""
    wanted: list[str] = []
    for item in ranges:
        is_dicom = item.media_type in ("multipart/related", "application/dicom") and (
            item.part_type in (None, "application/dicom")
            if item.media_type == "multipart/related"
            else True
        )
        if (
            item.media_type in ("*/*", "multipart/*")
            or (
                item.media_type == "multipart/related"
                and item.part_type in ("*/*", "application/*")
            )
            or is_dicom
        ):
            wanted.append(item.transfer_syntax or EXPLICIT_LE)
    if not wanted:
        raise NotAcceptable(
            'this resource is served as multipart/related; type="application/dicom"'
        )
    return wanted


def choose_syntax(stored: str, wanted: list[str]) -> str:
    """The syntax to send an instance stored in ``stored`` as; 406 if none can be made."""
    for syntax in wanted:
        if syntax in (ANY, stored):
            return stored
        if syntax in NATIVE and (stored in NATIVE or _decodable(stored)):
            return syntax
    raise NotAcceptable(
        f"the instance is stored as {stored}; it can be sent as stored "
        f"(transfer-syntax=*), as {EXPLICIT_LE} or as {IMPLICIT_LE}"
    )


def _decodable(syntax: str) -> bool:
    uid = UID(syntax)
    return bool(uid.is_compressed) and syntax in FRAME_TYPES


def boundary() -> str:
    return f"dicomhub-{secrets.token_hex(16)}"


def part_header(boundary_text: str, content_type: str, location: str | None = None) -> bytes:
    lines = [f"--{boundary_text}", f"Content-Type: {content_type}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closing(boundary_text: str) -> bytes:
    return f"--{boundary_text}--\r\n".encode()


def multipart_type(part_type: str, boundary_text: str, syntax: str | None = None) -> str:
    """A multipart/related Content-Type; the boundary comes last for parsers that split on it."""
    value = f'multipart/related; type="{part_type}"'
    if syntax:
        value += f"; transfer-syntax={syntax}"
    return f"{value}; boundary={boundary_text}"
