"""The file meta (group 0002) of a de-identified instance, rebuilt from what may stay.

File meta is written by whoever writes the file, so the original's is of no use after
de-identification and may leak: AE titles of the sender and receiver, a source
presentation address, private information with its creator UID, an implementation
UID equal to the creating device's InstanceCreatorUID. Only the required elements
survive, MediaStorageSOPInstanceUID and MediaStorageSOPClassUID are taken from the
de-identified dataset (so they always match it, whatever the original meta said),
and the implementation is named as the software writing the output. An instance read
without any file meta gets one, from the encoding it was read with.
"""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomhub import __version__
from dicomhub.core.deid.errors import MissingUidError

#: The only file meta elements that survive (group length is recomputed on write).
KEPT = frozenset({0x00020001, 0x00020010})
SOP_CLASS = 0x00080016
SOP_INSTANCE = 0x00080018
MEDIA_CLASS = 0x00020002
MEDIA_INSTANCE = 0x00020003
TRANSFER_SYNTAX = 0x00020010
IMPLEMENTATION_UID = 0x00020012
IMPLEMENTATION_NAME = 0x00020013
VERSION_NAME = f"DICOMHUB_{__version__}"[:16]


def rebuild_file_meta(ds: Dataset) -> None:
    """Cut ``ds.file_meta`` down to the minimal, consistent meta of the output.

    Raises :class:`MissingUidError` when the dataset has no SOPClassUID or
    SOPInstanceUID: without them the output cannot be a Part 10 file, and guessing
    one would break references. Values go in as raw explicit VR little endian
    elements (the file meta's own encoding): building them through pydicom's
    validation costs a quarter of a whole header's de-identification.
    """
    sop_class = _uid(ds, SOP_CLASS)
    sop_instance = _uid(ds, SOP_INSTANCE)
    if not sop_class or not sop_instance:
        missing = "SOPClassUID" if not sop_class else "SOPInstanceUID"
        raise MissingUidError(f"the instance has no {missing}; it cannot be written as a file")
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    raw = meta._dict
    for tag in [tag for tag in raw if tag not in KEPT]:
        del raw[tag]
    syntax = raw.get(BaseTag(TRANSFER_SYNTAX))
    if syntax is None or not syntax.value or not _text(syntax.value):
        _put(meta, TRANSFER_SYNTAX, "UI", _syntax_read(ds).encode("ascii"))
    _put(meta, MEDIA_CLASS, "UI", sop_class)
    _put(meta, MEDIA_INSTANCE, "UI", sop_instance)
    _put(meta, IMPLEMENTATION_UID, "UI", PYDICOM_IMPLEMENTATION_UID.encode("ascii"))
    _put(meta, IMPLEMENTATION_NAME, "SH", VERSION_NAME.encode("ascii"))


def _put(meta: Dataset, tag: int, vr: str, data: bytes) -> None:
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    meta._dict[BaseTag(tag)] = RawDataElement(
        BaseTag(tag), vr, len(data), data, 0, False, True, True, False
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    return str(value).strip("\x00 ")


def _uid(ds: Dataset, tag: int) -> bytes:
    """The first value of a UI element as ASCII bytes, read without converting it."""
    elem = ds._dict.get(BaseTag(tag))
    if elem is None or elem.value is None:
        return b""
    value = elem.value
    if isinstance(value, bytes):
        return value.split(b"\\", 1)[0].strip(b"\x00 ")
    if not isinstance(value, str):  # a multi-valued list
        value = value[0] if len(value) else ""
    return str(value).strip("\x00 ").encode("ascii", "replace")


def _syntax_read(ds: Dataset) -> str:
    """The uncompressed transfer syntax matching how the dataset was read."""
    implicit, little = ds.original_encoding
    if implicit:
        return str(ImplicitVRLittleEndian)
    if little is False:
        return str(ExplicitVRBigEndian)
    return str(ExplicitVRLittleEndian)
