"""Read a DICOM header fast and turn it into DICOM JSON (PS3.18 F.2) without bulk data.

``Dataset.to_json_dict()`` builds a full :class:`~pydicom.dataelem.DataElement`
(with value classes, validation and logging) for every element, which caps an
indexer at a few hundred instances a second.  This module converts pydicom's
*raw* elements straight from their bytes instead, and only hands an element
back to pydicom when it is unusual (ambiguous VR, UN with a known tag, ISO 2022
character sets), so the common case costs a decode and a split per element.

Differences from ``to_json_dict`` (both deliberate, both per PS3.18 F.2.5):
an empty value inside a multi-valued element is ``null`` rather than ``""``,
and an IS/DS value that is not a number is ``null`` rather than an exception
(:mod:`dicomhub.core.dicom.validate` reports it).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

LOGGER = logging.getLogger(__name__)

#: Binary values longer than this (in bytes) become a BulkDataURI placeholder.
BULK_THRESHOLD = 1024
#: The placeholder scheme: ``bulk:<tag path>``; the WADO layer resolves it to a URL.
BULK_SCHEME = "bulk:"

BulkHandler = Callable[[str], str]

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_TEXT_VRS = frozenset({"SH", "LO", "UC"})
_SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
_ASCII_MULTI_VRS = frozenset({"CS", "DA", "DT", "TM", "AS"})
_STRUCT = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}
_STRUCT_SIZE = {vr: struct.calcsize("<" + code) for vr, code in _STRUCT.items()}
_CHARSET_TAG = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103
_VR_CACHE: dict[int, str | None] = {}


class UnreadableError(ValueError):
    """The bytes are not a readable DICOM Part 10 file (garbage, truncated, no meta)."""


@dataclass(frozen=True)
class Header:
    """A parsed header: the file meta, the dataset (no pixel data) and its DICOM JSON."""

    meta: FileMetaDataset
    dataset: Dataset
    transfer_syntax_uid: str

    def to_json(self, bulk_threshold: int = BULK_THRESHOLD) -> dict[str, Any]:
        """The dataset as DICOM JSON without bulk data."""
        return dataset_to_json(self.dataset, bulk_threshold=bulk_threshold)


# --------------------------------------------------------------------------- reading


def read_header(source: bytes | str | Path | BinaryIO) -> Header:
    """Parse a Part 10 file's meta and header, stopping before the pixel data.

    Parameters
    ----------
    source:
        The whole file as bytes, a path, or a seekable binary file.

    Raises
    ------
    UnreadableError
        Not DICOM, no file meta or transfer syntax, or a header cut short.
    """
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    try:
        ds = dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, KeyError) as exc:
        raise UnreadableError(f"not a readable DICOM file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on garbage
        raise UnreadableError(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from exc
    meta = ds.file_meta
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts:
        raise UnreadableError("no file meta information with a transfer syntax")
    return Header(meta=meta, dataset=ds, transfer_syntax_uid=str(ts))


def check_complete(path: str | Path, header: Header | None = None) -> None:
    """Walk the top-level elements of a whole file and raise if it ends mid-element.

    Only tags and lengths are read (values are skipped by seeking), so a 500 MB
    file is checked in a few reads.  A header read with ``stop_before_pixels``
    cannot notice a file cut inside its pixel data; this does.

    Raises
    ------
    UnreadableError
        The file is truncated or its top-level structure is broken.

    ``header`` is the file's already-read header, when the caller has it (saves a parse).
    """
    if header is None:
        with open(path, "rb") as handle:
            header = read_header(handle)
    implicit = header.transfer_syntax_uid == "1.2.840.10008.1.2"
    little = header.transfer_syntax_uid != "1.2.840.10008.1.2.2"
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        handle.seek(_dataset_start(handle))
        if header.transfer_syntax_uid in _DEFLATED:
            _check_deflated(handle)
            return
        _walk(handle, size, implicit=implicit, little=little)


_DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"})


def _check_deflated(handle: BinaryIO) -> None:
    """A deflated dataset is complete when its deflate stream reaches its end."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        while chunk := handle.read(1024 * 1024):
            inflater.decompress(chunk, 0)
            if inflater.eof:
                return
    except zlib.error as exc:
        raise UnreadableError(f"broken deflated dataset: {exc}") from exc
    if not inflater.eof:
        raise UnreadableError("truncated: the deflated dataset ends early")


def _dataset_start(handle: BinaryIO) -> int:
    """Offset of the first dataset element after the preamble and group 0002."""
    handle.seek(128)
    if handle.read(4) != b"DICM":
        raise UnreadableError("no DICM prefix")
    while True:
        pos = handle.tell()
        head = handle.read(8)
        if len(head) < 8:
            raise UnreadableError("file ends inside the file meta information")
        group = struct.unpack("<H", head[:2])[0]
        if group != 0x0002:
            return pos
        vr = head[4:6]
        if vr in _LONG_VRS:
            length = struct.unpack("<L", handle.read(4))[0]
        else:
            length = struct.unpack("<H", head[6:8])[0]
        handle.seek(length, os.SEEK_CUR)


_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED = 0xFFFFFFFF


def _walk(
    handle: BinaryIO, size: int, *, implicit: bool, little: bool, in_item: bool = False
) -> None:
    """Skip elements up to the end of the file (or of an undefined-length item)."""
    end = "<" if little else ">"
    while in_item or handle.tell() < size:
        head = _read(handle, 8)
        group, element = struct.unpack(end + "HH", head[:4])
        if group == 0xFFFE:
            if in_item and element == 0xE00D:
                return
            raise UnreadableError(f"broken structure: stray delimiter at byte {handle.tell()}")
        nested_implicit = implicit or head[4:6] == b"UN"  # PS3.5 6.2.2: UN items are implicit
        if implicit:
            length = struct.unpack(end + "L", head[4:])[0]
        elif head[4:6] in _LONG_VRS:
            length = struct.unpack(end + "L", _read(handle, 4))[0]
        else:
            length = struct.unpack(end + "H", head[6:])[0]
        if length == _UNDEFINED:
            _skip_items(handle, size, implicit=nested_implicit, little=little)
            continue
        _seek(handle, size, length, f"({group:04X},{element:04X})")


def _skip_items(handle: BinaryIO, size: int, *, implicit: bool, little: bool) -> None:
    """Skip the items of an undefined-length value up to its sequence delimiter."""
    end = "<" if little else ">"
    while True:
        group, element, length = struct.unpack(end + "HHL", _read(handle, 8))
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000):
            raise UnreadableError(f"broken structure: expected an item at byte {handle.tell()}")
        if length == _UNDEFINED:
            _walk(handle, size, implicit=implicit, little=little, in_item=True)
        else:
            _seek(handle, size, length, "item")


def _read(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) < count:
        raise UnreadableError(f"truncated: file ends inside an element header at {handle.tell()}")
    return data


def _seek(handle: BinaryIO, size: int, length: int, what: str) -> None:
    if handle.tell() + length > size:
        raise UnreadableError(
            f"truncated: {what} needs {length} bytes at byte {handle.tell()} "
            f"but the file has {size}"
        )
    handle.seek(length, os.SEEK_CUR)


# --------------------------------------------------------------------------- JSON


def bulk_placeholder(path: str) -> str:
    """The BulkDataURI placeholder for the element at ``path`` (dotted tag path)."""
    return BULK_SCHEME + path


def dataset_to_json(
    ds: Dataset,
    *,
    bulk_threshold: int = BULK_THRESHOLD,
    bulk_handler: BulkHandler = bulk_placeholder,
) -> dict[str, Any]:
    """Convert a dataset (its raw elements) to DICOM JSON, bulk data as placeholders.

    Parameters
    ----------
    ds:
        A dataset as read by pydicom (elements still raw are converted from bytes).
    bulk_threshold:
        Binary values whose base64 form would exceed this many characters become
        a ``BulkDataURI`` from ``bulk_handler``; smaller ones are ``InlineBinary``.
    bulk_handler:
        Maps the element's dotted tag path (``00540016.0.00181072``) to a URI.
    """
    converter = _Converter(bulk_threshold, bulk_handler)
    return converter.dataset(ds, _encodings_of(ds, ["iso8859"]), "")


def _encodings_of(ds: Dataset, inherited: list[str]) -> list[str]:
    raw = ds._dict.get(BaseTag(_CHARSET_TAG))
    if raw is None:
        return inherited
    value = raw.value
    if isinstance(value, bytes):
        terms: Any = [t.strip() for t in value.decode("ascii", "replace").split("\\")]
    else:
        terms = value
    if not terms or terms == [""]:
        return ["iso8859"]
    try:
        return list(convert_encodings(terms))
    except Exception:  # unknown terms: pydicom warns and falls back
        return ["iso8859"]


class _Converter:
    """One conversion: the bulk policy and the per-element dispatch."""

    def __init__(self, bulk_threshold: int, bulk_handler: BulkHandler) -> None:
        self.inline_max = (bulk_threshold // 4) * 3
        self.bulk_handler = bulk_handler

    def dataset(self, ds: Dataset, encodings: list[str], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        simple = len(encodings) == 1 and not encodings[0].startswith("iso2022")
        codec = encodings[0] if simple else ""
        items = list(ds._dict.items())
        for tag, elem in items:
            key = f"{tag:08X}"
            where = f"{path}.{key}" if path else key
            try:
                if isinstance(elem, RawDataElement) and elem.value is not None:
                    out[key] = self.raw(ds, elem, encodings, codec, where)
                else:
                    out[key] = self.converted(ds, tag, encodings, where)
            except Exception as exc:  # one bad element must not lose the header
                LOGGER.debug("element %s not convertible: %s", where, exc)
                out[key] = self._unconvertible(elem, where)
        return out

    # -- raw fast path ------------------------------------------------------

    def raw(
        self, ds: Dataset, raw: RawDataElement, encodings: list[str], codec: str, where: str
    ) -> dict[str, Any]:
        vr = raw.VR
        tag = raw.tag
        if vr is None:
            vr = _implicit_vr(ds, tag)
        elif vr == "UN" and raw.length != _UNDEFINED:
            vr = _un_vr(ds, tag, raw)
        if vr is None or " or " in vr or vr == "SQ":
            return self.converted_json(ds, tag, encodings, where)
        value = raw.value or b""
        if not value:
            return {"vr": vr}
        if vr in _BINARY_VRS:
            return self.binary(vr, value, where)
        fmt = _STRUCT.get(vr)
        if fmt is not None:
            return {"vr": vr, "Value": _unpack(vr, fmt, value, raw.is_little_endian)}
        if vr == "AT":
            return {"vr": vr, "Value": _tags(value, raw.is_little_endian)}
        if not codec and vr in ("PN", "SH", "LO", "UC", "ST", "LT", "UT"):
            return self.converted_json(ds, tag, encodings, where)
        return _string_json(vr, value, codec)

    def binary(self, vr: str, value: bytes, where: str) -> dict[str, Any]:
        if len(value) > self.inline_max:
            return {"vr": vr, "BulkDataURI": self.bulk_handler(where)}
        return {"vr": vr, "InlineBinary": base64.b64encode(value).decode("ascii")}

    # -- pydicom path (sequences, ambiguous VRs, ISO 2022) --------------------

    def converted_json(
        self, ds: Dataset, tag: BaseTag, encodings: list[str], where: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.converted(ds, tag, encodings, where)
        return result

    def converted(self, ds: Dataset, tag: BaseTag, encodings: list[str], where: str) -> Any:
        elem: DataElement = ds[tag]
        vr = str(elem.VR)
        if vr == "SQ":
            seq: Sequence = elem.value
            items = []
            for index, item in enumerate(seq):
                item_enc = _encodings_of(item, encodings)
                items.append(self.dataset(item, item_enc, f"{where}.{index}"))
            return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        if vr in _BINARY_VRS or vr in ("OB or OW", "US or SS or OW"):
            value = elem.value
            if elem.is_empty or not isinstance(value, bytes):
                return {"vr": vr} if elem.is_empty else elem.to_json_dict(None, 0)
            return self.binary(vr, value, where)
        result: dict[str, Any] = elem.to_json_dict(None, 0)
        return _nulls(result)

    def _unconvertible(self, elem: Any, where: str) -> dict[str, Any]:
        value = getattr(elem, "value", None)
        if isinstance(value, bytes) and value:
            return self.binary("UN", value, where)
        return {"vr": "UN"}


def _implicit_vr(ds: Dataset, tag: BaseTag) -> str | None:
    """The VR of an implicit-VR element: the dictionary, the private dictionary, or UN."""
    if not tag.is_private:
        cached = _VR_CACHE.get(tag, "")
        if cached != "":
            return cached
        try:
            vr: str | None = str(dictionary_VR(tag))
        except KeyError:
            vr = "UL" if tag.element == 0 else "UN"
        _VR_CACHE[tag] = vr
        return vr
    if tag.is_private_creator:
        return "LO"
    return _private_vr(ds, tag)


def _private_vr(ds: Dataset, tag: BaseTag) -> str:
    if not tag.element & 0xFF00:
        return "UN"
    creator_elem = ds._dict.get(BaseTag(tag.group << 16 | (tag.element >> 8)))
    if creator_elem is None:
        return "UN"
    creator = creator_elem.value
    if isinstance(creator, bytes):
        creator = creator.decode("latin-1").strip(" \x00")
    if not creator:
        return "UN"
    try:
        return str(private_dictionary_VR(tag, creator))
    except KeyError:
        return "UN"


def _un_vr(ds: Dataset, tag: BaseTag, raw: RawDataElement) -> str | None:
    """pydicom replaces a UN with the known VR; send those through pydicom."""
    if tag.is_private:
        return None if tag.is_private_creator or _private_vr(ds, tag) != "UN" else "UN"
    if raw.value is not None and len(raw.value) >= 0xFFFF:
        return "UN"
    try:
        dictionary_VR(tag)
    except KeyError:
        return "UN"
    return None


def _unpack(vr: str, fmt: str, value: bytes, little: bool) -> list[Any]:
    size = _STRUCT_SIZE[vr]
    count = len(value) // size
    numbers = list(struct.unpack(f"{'<' if little else '>'}{count}{fmt}", value[: count * size]))
    if vr in ("FL", "FD"):
        return [n if math.isfinite(n) else None for n in numbers]
    return numbers


def _tags(value: bytes, little: bool) -> list[str]:
    count = len(value) // 4
    pairs = struct.unpack(f"{'<' if little else '>'}{count * 2}H", value[: count * 4])
    return [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]


def _string_json(vr: str, value: bytes, codec: str) -> dict[str, Any]:
    """Text VRs: decode, split on backslash (multi-valued VRs), strip padding."""
    if vr in _SINGLE_TEXT_VRS:
        text = _decode(value, codec).rstrip("\x00 ")
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if vr == "UR":
        text = value.decode("latin-1").rstrip()
        return {"vr": vr, "Value": [text]} if text else {"vr": vr}
    if vr == "PN":
        text = _decode(value.rstrip(b"\x00 "), codec)
        return {"vr": vr, "Value": [_person(v) for v in text.split("\\")]} if text else {"vr": vr}
    if vr in _TEXT_VRS:
        parts = [p.rstrip("\x00 ") for p in _decode(value, codec).split("\\")]
    elif vr == "AE":
        parts = [p.strip() for p in value.decode("latin-1").split("\\")]
    elif vr == "IS":
        return _numbers(vr, value, _to_int)
    elif vr == "DS":
        return _numbers(vr, value, _to_float)
    else:  # CS, DA, DT, TM, AS, UI and anything else textual
        parts = value.decode("latin-1").rstrip(" \x00").split("\\")
    if len(parts) == 1:
        return {"vr": vr, "Value": parts} if parts[0] else {"vr": vr}
    return {"vr": vr, "Value": [p if p else None for p in parts]}


def _decode(value: bytes, codec: str) -> str:
    try:
        return value.decode(codec)
    except UnicodeDecodeError:
        return value.decode(codec, "replace")


def _person(text: str) -> dict[str, str] | None:
    if not text:
        return None
    groups = text.split("=")
    person = {"Alphabetic": groups[0]}
    if len(groups) > 1:
        person["Ideographic"] = groups[1]
    if len(groups) > 2:
        person["Phonetic"] = groups[2]
    return person


def _numbers(vr: str, value: bytes, convert: Callable[[str], Any]) -> dict[str, Any]:
    parts = value.decode("latin-1").strip(" \x00").split("\\")
    if len(parts) == 1 and not parts[0]:
        return {"vr": vr}
    return {"vr": vr, "Value": [convert(p.strip()) if p.strip() else None for p in parts]}


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        number = _to_float(text)
        if number is not None and number.is_integer():
            return int(number)
        return None


def _to_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _nulls(result: dict[str, Any]) -> dict[str, Any]:
    """pydicom writes empty values inside a multi-valued element as ""; PS3.18 says null."""
    values = result.get("Value")
    if isinstance(values, list) and len(values) > 1:
        result["Value"] = [None if v == "" or v == {"Alphabetic": ""} else v for v in values]
    return result
