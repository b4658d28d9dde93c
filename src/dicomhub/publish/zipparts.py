"""The pieces of a streamed ZIP of stored (uncompressed) entries, shared by every zip route.

DICOM pixel data is mostly incompressible or compressed already, so entries are
stored: the archive's length is then known before the first byte (each entry
adds a fixed overhead besides its name and data), which lets a route send
``Content-Length``.  ``zipfile`` writes into an unseekable :class:`Sink`, so it
adds a data descriptor after each entry; the constants below count it.
"""

from __future__ import annotations

import zipfile
from datetime import datetime

#: Yield what the sink holds once it reaches this many bytes.
FLUSH_AT = 256 * 1024
#: Bytes a stored entry adds besides its name (twice) and data: local header (30),
#: data descriptor (16, the stream is unseekable), central directory record (46).
ENTRY_OVERHEAD = 30 + 16 + 46
#: The end of central directory record.
END_RECORD = 22
#: Above these the ZIP needs ZIP64 records, whose length is not worth predicting.
ZIP32_LIMIT = 0xFFFFFFFF
ZIP32_ENTRIES = 0xFFFF


class Sink:
    """A write-only, unseekable file that keeps what was written until drained."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: bytes leave through :meth:`drain`."""

    def close(self) -> None:
        """Nothing to release."""

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        self.pending = 0
        return out


def stored_entry(name: str, size: int, when: datetime) -> zipfile.ZipInfo:
    """A stored entry of ``size`` bytes, readable by everyone (0644)."""
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    info.external_attr = 0o644 << 16
    return info
