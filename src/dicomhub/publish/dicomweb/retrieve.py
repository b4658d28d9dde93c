"""WADO-RS: instances, their metadata, frames and bulk data, for one caller.

An instance is reached only through a series the caller may see (the query
layer's scope), with its study and series UIDs checked to be its own.
Instances go out as stored when the client accepts it, or rewritten as
Explicit VR Little Endian (the default of PS3.18) when the stored syntax is
uncompressed or pydicom can decode it; anything else is a 406.  Stored bytes
are checked against their recorded SHA-256 while they stream.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicomhub.core.db import Instance, Series, Study
from dicomhub.core.dicom.header import BULK_SCHEME
from dicomhub.core.store.base import BlobStore, verified_blob
from dicomhub.errors import BadRequest, NotFound, Rejected
from dicomhub.publish.access import Visibility
from dicomhub.publish.dicomweb import media
from dicomhub.publish.dicomweb.qido import visible
from dicomhub.publish.filters import check_uid

MAX_FRAMES = 10_000
_FRAME_LIST = re.compile(r"\d{1,6}(,\d{1,6})*")
PIXEL_DATA = "7FE00010"
_BULK_PATH = re.compile(r"[0-9A-Fa-f]{8}(\.\d{1,6}\.[0-9A-Fa-f]{8})*")


@dataclass(frozen=True)
class Stored:
    """One instance as stored, with the UIDs of its study and series."""

    study_uid: str
    series_uid: str
    sop_uid: str
    transfer_syntax: str
    blob_key: str
    size: int
    sha256: str
    header: dict[str, Any]


def find_instances(
    session: Session,
    seen: Visibility,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> list[Stored]:
    """The visible instances under a study (series, instance); NotFound if there are none."""
    conditions = [
        Study.study_instance_uid == check_uid(study_uid, "StudyInstanceUID"),
        visible(seen),
    ]
    if series_uid is not None:
        conditions.append(Series.series_instance_uid == check_uid(series_uid, "SeriesInstanceUID"))
    if sop_uid is not None:
        conditions.append(Instance.sop_instance_uid == check_uid(sop_uid, "SOPInstanceUID"))
    query = (
        select(
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.transfer_syntax_uid,
            Instance.blob_key,
            Instance.size,
            Instance.sha256,
            Instance.header,
        )
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(*conditions)
        .order_by(Series.series_number.asc().nulls_last(), Series.id)
        .order_by(Instance.instance_number.asc().nulls_last(), Instance.id)
    )
    found = [
        Stored(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6], row[7] or {})
        for row in session.execute(query)
    ]
    if not found:
        what = sop_uid or series_uid or study_uid
        raise NotFound(f"no {what}")
    return found


def location(base: str, item: Stored) -> str:
    return f"{base}/studies/{item.study_uid}/series/{item.series_uid}/instances/{item.sop_uid}"


# -- metadata -----------------------------------------------------------------------------


def metadata(items: Sequence[Stored], base: str) -> list[dict[str, Any]]:
    """The stored headers as DICOM JSON, bulk data placeholders turned into URLs.

    Stored headers stop before the pixel data; an image (one with Rows) gets
    its Pixel Data back as a BulkDataURI, as PS3.18 metadata carries it, so a
    client can fetch the whole value as well as single frames.
    """
    out = []
    for item in items:
        prefix = location(base, item) + "/bulk/"
        header = _resolve(item.header, prefix)
        header.setdefault("00083002", {"vr": "UI", "Value": [item.transfer_syntax]})
        if PIXEL_DATA not in header and "00280010" in header:
            header[PIXEL_DATA] = {"vr": _pixel_vr(item), "BulkDataURI": prefix + PIXEL_DATA}
        out.append(dict(sorted(header.items())))
    return out


def _pixel_vr(item: Stored) -> str:
    """OW for native pixels of more than 8 bits, OB otherwise (PS3.5 A.1, A.4)."""
    bits = item.header.get("00280100", {}).get("Value", [8])
    if UID(item.transfer_syntax).is_compressed or not bits or int(bits[0]) <= 8:
        return "OB"
    return "OW"


def _resolve(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        uri = value.get("BulkDataURI")
        resolved = {k: _resolve(v, prefix) for k, v in value.items()}
        if isinstance(uri, str) and uri.startswith(BULK_SCHEME):
            resolved["BulkDataURI"] = prefix + uri[len(BULK_SCHEME) :]
        return resolved
    if isinstance(value, list):
        return [_resolve(v, prefix) for v in value]
    return value


# -- instances ------------------------------------------------------------------------------


def transcode(data: bytes, syntax: str, target: str = media.EXPLICIT_LE) -> bytes:
    """The file rewritten in ``target``, an uncompressed little-endian syntax (decoded first)."""
    ds = dcmread(io.BytesIO(data))
    if UID(syntax).is_compressed:
        try:
            ds.decompress()
        except Exception as exc:  # pydicom raises many kinds for codecs it lacks
            raise media.NotAcceptable(
                f"cannot decode {syntax} here; ask for transfer-syntax=*"
            ) from exc
    ds.file_meta.TransferSyntaxUID = UID(target)
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=target == media.IMPLICIT_LE, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Parts:
    """A multipart body of instances, its length if known, and its one transfer syntax if any."""

    body: Iterator[bytes]
    length: int | None
    syntax: str | None


def instance_parts(
    store: BlobStore, items: Sequence[Stored], syntaxes: Sequence[str], base: str, boundary: str
) -> Parts:
    """The multipart body of ``items``, its length when known in advance, and its syntax.

    ``syntax`` is set when every part has the same transfer syntax, so the
    response's Content-Type can carry it as the request's Accept did.
    """
    chosen = [media.choose_syntax(item.transfer_syntax, list(syntaxes)) for item in items]
    headers = [
        media.part_header(
            boundary, f"application/dicom; transfer-syntax={syntax}", location(base, item)
        )
        for item, syntax in zip(items, chosen, strict=True)
    ]
    length: int | None = None
    if all(syntax == item.transfer_syntax for item, syntax in zip(items, chosen, strict=True)):
        length = sum(len(h) + item.size + 2 for h, item in zip(headers, items, strict=True))
        length += len(media.closing(boundary))

    def body() -> Iterator[bytes]:
        for item, syntax, head in zip(items, chosen, headers, strict=True):
            yield head
            blob = verified_blob(store, item.blob_key, item.size, item.sha256)
            if syntax == item.transfer_syntax:
                yield from blob
            else:
                yield transcode(b"".join(blob), item.transfer_syntax, syntax)
            yield b"\r\n"
        yield media.closing(boundary)

    uniform = chosen[0] if chosen and len(set(chosen)) == 1 else None
    return Parts(body(), length, uniform)


# -- frames and bulk data -------------------------------------------------------------------


def frame_numbers(text: str) -> list[int]:
    """``1,3,5`` as numbers (one-based); 400 if malformed."""
    if not _FRAME_LIST.fullmatch(text):
        raise BadRequest(f"frame list must be comma-separated numbers, got {text[:40]!r}")
    numbers = [int(n) for n in text.split(",")]
    if len(numbers) > MAX_FRAMES or min(numbers) < 1:
        raise BadRequest("frame numbers start at 1")
    return numbers


def _dataset(store: BlobStore, item: Stored) -> Dataset:
    data = b"".join(verified_blob(store, item.blob_key, item.size, item.sha256))
    return dcmread(io.BytesIO(data))


def frames(
    store: BlobStore, item: Stored, numbers: Sequence[int], ranges: Sequence[media.MediaRange]
) -> tuple[str, str | None, list[bytes]]:
    """``(media type, transfer syntax, frames)``: native frames, or compressed ones as stored."""
    ds = _dataset(store, item)
    if "PixelData" not in ds:
        raise NotFound(f"instance {item.sop_uid} has no pixel data")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if max(numbers) > count:
        raise NotFound(f"instance {item.sop_uid} has {count} frame(s)")
    syntax = UID(item.transfer_syntax)
    compressed_type = media.FRAME_TYPES.get(str(syntax))
    if syntax.is_compressed and compressed_type and _accepts(ranges, compressed_type):
        encoded = list(generate_frames(ds.PixelData, number_of_frames=count))
        return compressed_type, str(syntax), [encoded[n - 1] for n in numbers]
    if not _accepts(ranges, "application/octet-stream"):
        raise media.NotAcceptable("frames are served as application/octet-stream")
    if syntax.is_compressed:
        try:
            ds.decompress()
        except Exception as exc:  # a codec pydicom lacks
            raise media.NotAcceptable(f"cannot decode {syntax} here") from exc
    native = bytes(ds.PixelData)
    size = len(native) // count
    if size * count != len(native):
        raise Rejected("the pixel data does not divide into whole frames")
    return (
        "application/octet-stream",
        media.EXPLICIT_LE,
        [native[(n - 1) * size : n * size] for n in numbers],
    )


def _accepts(ranges: Sequence[media.MediaRange], part_type: str) -> bool:
    major = part_type.split("/")[0]
    for item in ranges:
        if item.media_type in ("*/*", "multipart/*"):
            return True
        if item.media_type == "multipart/related" and item.part_type in (
            None,
            "*/*",
            part_type,
            f"{major}/*",
        ):
            return True
        if item.media_type == part_type:
            return True
    return False


def bulk(store: BlobStore, item: Stored, path: str) -> bytes:
    """The value of the binary element at ``path`` (``7FE00010``, ``00540016.0.00181072``)."""
    if not _BULK_PATH.fullmatch(path):
        raise BadRequest(f"malformed bulk data path {path[:80]!r}")
    ds = _dataset(store, item)
    parts = path.split(".")
    current: Dataset = ds
    try:
        for index in range(0, len(parts) - 1, 2):
            current = current[int(parts[index], 16)].value[int(parts[index + 1])]
        element = current[int(parts[-1], 16)]
    except (KeyError, IndexError, TypeError):
        raise NotFound(f"no bulk data at {path}") from None
    value = element.value
    if not isinstance(value, bytes):
        raise NotFound(f"the element at {path} is not bulk data")
    return value
