"""``getDicomTags``: the first image's header as NBIA's text dump lists it.

Rows are ``{"element": "(GGGG,EEEE)", "name": ..., "data": ...}``: file meta
first, then the dataset up to the pixel data.  An element inside a sequence
carries one ``>`` per level of nesting, and each sequence ends with a row of
the same element named ``End <name>``; tcia_utils' ``getSegRefSeries`` looks
for exactly those prefixes.  Values of groups at or above 0x6000 (overlays,
pixel data) and binary values are shown as ``...``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomhub.core.dicom.header import UnreadableError

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_MAX_TEXT = 1024


def dicom_tags(data: bytes) -> list[dict[str, str]]:
    """The rows of ``getDicomTags`` for one Part 10 file."""
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        raise UnreadableError(f"not a readable DICOM file: {exc}") from exc
    rows: list[dict[str, str]] = []
    if ds.file_meta is not None:
        rows.extend(_rows(ds.file_meta, 0))
    rows.extend(_rows(ds, 0))
    return rows


def _element(tag: Any) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _rows(ds: Dataset, depth: int) -> Iterator[dict[str, str]]:
    prefix = ">" * depth
    for elem in ds:
        name = elem.name
        element = prefix + _element(elem.tag)
        if elem.VR == "SQ":
            yield {"element": element, "name": name, "data": ""}
            for item in elem.value:
                yield from _rows(item, depth + 1)
            yield {"element": element, "name": f"End {name}", "data": ""}
            continue
        yield {"element": element, "name": name, "data": _data(elem)}


def _data(elem: DataElement) -> str:
    if elem.tag.group >= 0x6000 or elem.VR in _BINARY_VRS:
        return "..."
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    elif isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    else:
        text = str(value)
    return text[:_MAX_TEXT]
