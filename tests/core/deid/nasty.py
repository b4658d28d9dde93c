"""Generators of nasty inputs: the shapes real sites' and odd vendors' files take.

Each builder returns file bytes (or a dataset) carrying PHI in the awkward place it
exercises; the tests run the engine over them and judge the outcome with ``leaks.py``.
Everything is built in memory, so the tests need no data files.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .helpers import ct, item, seq

NAME = "Nastyname^Patricia"
SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)


def encode(
    ds: Dataset,
    syntax: str = ExplicitVRLittleEndian,
    *,
    preamble: bool = True,
    meta: bool = True,
) -> bytes:
    """``ds`` as file bytes in ``syntax``; optionally without preamble or file meta."""
    ds = ds.copy()
    old_meta = getattr(ds, "file_meta", None)
    ds.file_meta = FileMetaDataset(old_meta) if old_meta is not None else FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    buf = io.BytesIO()
    with config.disable_value_validation():
        if meta:
            ds.preamble = b"\x00" * 128 if preamble else None
            ds.save_as(buf, enforce_file_format=preamble)
        else:
            del ds.file_meta
            uid = UID(syntax)
            ds.save_as(buf, implicit_vr=uid.is_implicit_VR, little_endian=uid.is_little_endian)
    return buf.getvalue()


def phi_ct(**attrs: Any) -> Dataset:
    """A CT with PHI at the top level and in the sequences Annex E names."""
    fields: dict[str, Any] = {
        "PatientName": NAME, "PatientID": "MRN-77", "AccessionNumber": "ACC99887", **attrs
    }  # fmt: skip
    ds = ct(**fields)
    ds.OtherPatientIDsSequence = seq(item(PatientID="OTHER-4411", IssuerOfPatientID="CITY HOSP"))
    ds.ReferencedPatientSequence = seq(
        item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.1.1", ReferencedSOPInstanceUID="1.2.3.9.1")
    )
    ds.RequestAttributesSequence = seq(
        item(
            RequestedProcedureID="RP-55123",
            ScheduledProcedureStepID="SPS-55124",
            AccessionNumber="ACC99887",
            StudyInstanceUID="1.2.3.4.1",
        )
    )
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.StudyDescription = "CT chest Nastyname 2020-01-15"
    ds.OperatorsName = ["Op^One", "Op^Two"]
    return ds


def deep(levels: int) -> Dataset:
    """PHI, dates and UIDs at every one of ``levels`` nested sequence levels."""
    ds = phi_ct()
    parent = ds
    for n in range(levels):
        child = item(
            ReferencedSOPInstanceUID=f"1.2.3.77.{n}",
            OperatorsName=f"Deep{n}^Op",
            ContributionDateTime="20200115101600+0100",
        )
        parent.ReferencedSeriesSequence = seq(child)
        parent = child
    return ds


def undefined_lengths(ds: Dataset) -> Dataset:
    """Every sequence and item of ``ds`` written with undefined length."""
    for elem in ds.iterall():
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for child in elem.value:
                child.is_undefined_length_sequence_item = True
    return ds


def sr_document() -> Dataset:
    """A Basic Text SR whose content tree carries a name, dates, a UID and free text."""
    ds = phi_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.11", Modality="SR")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    del ds.PixelData
    ds.ContentDate = "20200116"
    ds.ContentSequence = seq(
        item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue=f"Seen by {NAME} today"),
        item(RelationshipType="CONTAINS", ValueType="PNAME", PersonName="Reader^Rolf"),
        item(RelationshipType="CONTAINS", ValueType="DATE", Date="20200117"),
        item(RelationshipType="CONTAINS", ValueType="DATETIME", DateTime="20200117093000-0500"),
        item(RelationshipType="CONTAINS", ValueType="UIDREF", UID="1.2.3.4.55.66"),
        item(
            RelationshipType="CONTAINS",
            ValueType="CONTAINER",
            ContentSequence=seq(item(ValueType="TEXT", TextValue="Dr Nastyname MRN-77")),
        ),
    )
    return ds


def graphics(ds: Dataset) -> Dataset:
    """Overlays in two groups and a curve, each with identifying text."""
    for group in (0x6000, 0x6002):
        ds.add_new(group << 16 | 0x0010, "US", 4)
        ds.add_new(group << 16 | 0x0011, "US", 4)
        ds.add_new(group << 16 | 0x0022, "LO", f"overlay of {NAME}")
        ds.add_new(group << 16 | 0x3000, "OW", b"\xff\xff")
        ds.add_new(group << 16 | 0x4000, "LT", "Nastyname comment")
    ds.add_new(0x50000022, "LO", f"curve of {NAME}")
    ds.add_new(0x50003000, "OW", b"\x01\x00\x02\x00")
    return ds


def waveform(ds: Dataset) -> Dataset:
    """A waveform sequence with an annotation that names the patient."""
    channel = item(ChannelLabel="Lead I", ChannelSampleSkew="0")
    ds.WaveformSequence = seq(
        item(
            NumberOfWaveformChannels=1,
            NumberOfWaveformSamples=2,
            SamplingFrequency="500",
            ChannelDefinitionSequence=seq(channel),
            WaveformBitsAllocated=16,
            WaveformSampleInterpretation="SS",
            WaveformData=b"\x00\x01\x00\x02",
        )
    )
    ds.WaveformAnnotationSequence = seq(
        item(UnformattedTextValue=f"{NAME} event", ReferencedWaveformChannels=[1, 1])
    )
    return ds


def leaky_meta(ds: Dataset) -> Dataset:
    """File meta naming the sending AE, private information and a stale instance UID."""
    meta = ds.file_meta
    meta.SourceApplicationEntityTitle = "PACS_NASTY"
    meta.SendingApplicationEntityTitle = "SEND_NASTY"
    meta.ReceivingApplicationEntityTitle = "RECV_NASTY"
    meta.PrivateInformationCreatorUID = UID("1.2.3.4.99.1")
    meta.PrivateInformation = f"owner {NAME}".encode() + b" "
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4.100.999")
    meta.ImplementationVersionName = "NASTYPACS"
    return ds


def privates(ds: Dataset) -> Dataset:
    """A block without creator, two blocks with one creator, a UI and a PN kept by name."""
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00090011, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "kept text")
    ds.add_new(0x00091002, "UI", "1.2.3.4.1")
    ds.add_new(0x00091003, "PN", "Private^Person")
    ds.add_new(0x00091101, "LO", "second block text")
    ds.add_new(0x00091105, "LO", f"second {NAME}")
    ds.add_new(0x00111001, "LO", f"orphan {NAME}")  # no (0011,0010) creator
    ds.add_new(0x00130010, "LO", "")  # empty creator
    ds.add_new(0x00131001, "LO", f"empty creator {NAME}")
    return ds


def explicit_element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element, as raw bytes."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV"):
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def with_raw(data: bytes, *elements: bytes) -> bytes:
    """Explicit VR LE file ``data`` with ``elements`` inserted just before pixel data.

    Lets a test write what pydicom refuses to: a known tag with another VR.
    """
    at = data.rfind(b"\xe0\x7f\x10\x00")
    return data[:at] + b"".join(elements) + data[at:]


def wrong_vr_file() -> bytes:
    """Known attributes written with the wrong VR (in tag order, before pixel data)."""
    ds = phi_ct()
    for keyword in ("PatientName", "PatientID", "StudyDate", "InstitutionName"):
        delattr(ds, keyword)
    data = encode(ds)
    # The tags must stay in ascending order, so they are spliced where they belong.
    return splice(
        data,
        explicit_element(0x00080020, "LO", b"20200115"),  # StudyDate as LO
        explicit_element(0x00080080, "UN", b"Nasty General "),  # InstitutionName as UN
        explicit_element(0x00100010, "LO", NAME.encode() + b" "),  # PatientName as LO
        explicit_element(0x00100020, "OB", b"MRN-77"),  # PatientID as OB
    )


def splice(data: bytes, *elements: bytes) -> bytes:
    """Insert complete top-level elements into explicit VR LE ``data`` in tag order."""
    body_start = _dataset_start(data)
    offset = body_start
    out = bytearray(data[:body_start])
    pending = sorted(elements, key=lambda e: struct.unpack("<HH", e[:4]))
    while offset < len(data):
        group, elem = struct.unpack("<HH", data[offset : offset + 4])
        tag = group << 16 | elem
        while pending and _tag(pending[0]) < tag:
            out += pending.pop(0)
        length = _element_length(data, offset)
        out += data[offset : offset + length]
        offset += length
    for rest in pending:
        out += rest
    return bytes(out)


def _tag(element: bytes) -> int:
    group, elem = struct.unpack("<HH", element[:4])
    return int(group << 16 | elem)


def _dataset_start(data: bytes) -> int:
    offset = 132
    (meta_length,) = struct.unpack("<I", data[offset + 8 : offset + 12])
    return offset + 12 + int(meta_length)


def _element_length(data: bytes, offset: int) -> int:
    vr = data[offset + 4 : offset + 6].decode("ascii")
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV"):
        (length,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        if length == 0xFFFFFFFF:
            raise ValueError("undefined length is not spliced over")
        return 12 + int(length)
    (length,) = struct.unpack("<H", data[offset + 6 : offset + 8])
    return 8 + int(length)


def zero_lengths() -> Dataset:
    """Every kind of attribute present with a zero-length value."""
    ds = phi_ct()
    for keyword in (
        "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName",
        "InstitutionName", "FrameOfReferenceUID", "PatientAge", "StudyDescription",
    ):  # fmt: skip
        setattr(ds, keyword, None)
    ds.ReferencedSeriesSequence = Sequence()
    ds.OtherPatientIDsSequence = seq(Dataset())
    ds.add_new(0x00090010, "LO", None)
    ds.add_new(0x00091001, "LO", None)
    return ds


def huge_values(count: int) -> Dataset:
    """Very long multi-valued strings: IDs, dates, UIDs and one long free text."""
    with config.disable_value_validation():  # the text is longer than LT allows
        return _huge_values(count)


def _huge_values(count: int) -> Dataset:
    ds = phi_ct()
    ds.OtherPatientIDs = [f"OID{n:06d}" for n in range(count)]
    ds.DateOfLastCalibration = [f"2019{(n % 12) + 1:02d}{(n % 28) + 1:02d}" for n in range(count)]
    ds.FailedSOPInstanceUIDList = [f"1.2.3.88.{n}" for n in range(count)]
    ds.ImageComments = " ".join(f"note {n} {NAME} 2020-01-15" for n in range(count // 10))
    return ds


CHARSETS: tuple[tuple[str | list[str], str, str], ...] = (
    ("ISO_IR 100", "Müller^Jürgen", "Nachsorge Müller Jürgen"),
    ("ISO_IR 192", "Ñandú^Zoë", "control Ñandú"),
    ("ISO_IR 144", "Иванов^Иван", "КТ Иванов"),  # noqa: RUF001
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "胸部CT 山田太郎"),
    (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동", "흉부 홍길동"),
    ("GB18030", "Wang^XiaoDong=王^小东=", "胸部 王小东 复查"),
    ("ISO_IR 999", "Müller^Jürgen", "Nachsorge Müller"),  # not a character set
)


def charset_ct(charset: str | list[str], name: str, text: str) -> Dataset:
    """A CT in ``charset`` whose name also appears in free text and a nested PN."""
    ds = phi_ct()
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = text
    ds.ReferencedSeriesSequence = seq(item(OperatorsName=name, SeriesInstanceUID="1.2.3.4.2"))
    return ds
