"""The Part 10 file head (preamble, prefix, file meta) of an instance received over DIMSE.

pynetdicom builds it through a pydicom ``FileMetaDataset`` and its writer for
every C-STORE, which costs more than the rest of journaling an instance
together.  The group has six fixed elements, encoded here directly - byte for
byte what :func:`pynetdicom.dsutils.encode_file_meta` writes for
``event.file_meta`` (a test holds the two side by side).
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

_PREFIX = b"\x00" * 128 + b"DICM"
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of group 0002."""
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _padded(value: str, pad: bytes) -> bytes:
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def file_head(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble, ``DICM`` and the file meta group for a dataset received in ``transfer_syntax``."""
    body = b"".join((
        _element(0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, b"UI", _padded(sop_class_uid, b"\x00")),
        _element(0x0003, b"UI", _padded(sop_instance_uid, b"\x00")),
        _element(0x0010, b"UI", _padded(transfer_syntax_uid, b"\x00")),
        _element(0x0012, b"UI", _padded(str(PYNETDICOM_IMPLEMENTATION_UID), b"\x00")),
        _element(0x0013, b"SH", _padded(PYNETDICOM_IMPLEMENTATION_VERSION, b" ")),
    ))  # fmt: skip
    return _PREFIX + _element(0x0000, b"UL", struct.pack("<I", len(body))) + body
