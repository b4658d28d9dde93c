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

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
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
VERSION_NAME = f"DICOMHUB_{__version__}"[:16]


def rebuild_file_meta(ds: Dataset) -> None:
    """Replace ``ds.file_meta`` by the minimal, consistent meta of the output.

    Raises :class:`MissingUidError` when the dataset has no SOPClassUID or
    SOPInstanceUID: without them the output cannot be a Part 10 file, and guessing
    one would break references.
    """
    old = getattr(ds, "file_meta", None)
    sop_class = _uid(ds, SOP_CLASS)
    sop_instance = _uid(ds, SOP_INSTANCE)
    if not sop_class or not sop_instance:
        missing = "SOPClassUID" if not sop_class else "SOPInstanceUID"
        raise MissingUidError(f"the instance has no {missing}; it cannot be written as a file")
    meta = FileMetaDataset()
    if old is not None:
        for tag in KEPT:
            if tag in old:
                meta[tag] = old[tag]
    if not str(meta.get("TransferSyntaxUID", "") or "").strip():
        meta.TransferSyntaxUID = UID(_syntax_read(ds))
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = VERSION_NAME
    ds.file_meta = meta


def _uid(ds: Dataset, tag: int) -> str:
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ")


def _syntax_read(ds: Dataset) -> str:
    """The uncompressed transfer syntax matching how the dataset was read."""
    implicit, little = ds.original_encoding
    if implicit:
        return str(ImplicitVRLittleEndian)
    if little is False:
        return str(ExplicitVRBigEndian)
    return str(ExplicitVRLittleEndian)
