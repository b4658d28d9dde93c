"""Encode a built dataset in the transfer syntax its series plan asks for.

Builders always produce native little-endian pixels; compressed syntaxes go through
pydicom's own encoders (RLE, JPEG-LS via pyjpegls, JPEG 2000 via pylibjpeg-openjpeg),
and the uncompressed ones only need the file meta to say how to write the file.
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

COMPRESSED_LOSSLESS = {
    UID("1.2.840.10008.1.2.5"),  # RLE Lossless
    UID("1.2.840.10008.1.2.4.80"),  # JPEG-LS Lossless
    UID("1.2.840.10008.1.2.4.90"),  # JPEG 2000 Lossless
}


def encode(ds: Dataset, transfer_syntax: UID) -> None:
    """Set ``ds`` to ``transfer_syntax`` in place; lossless, so the SOP UID stays."""
    if transfer_syntax in COMPRESSED_LOSSLESS and "PixelData" in ds:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(transfer_syntax, generate_instance_uid=False)
    elif transfer_syntax.is_compressed:
        raise ValueError(f"no encoder configured for {transfer_syntax.name}")
    else:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
