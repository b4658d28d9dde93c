"""Build small, realistic test instances (fake PHI only) in any transfer syntax."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"


def make_dataset(
    *,
    patient_id: str = "PAT-001",
    study_uid: str = STUDY,
    series_uid: str = STUDY + ".1",
    sop_uid: str | None = None,
    instance_number: int = 1,
    rows: int = 16,
    **overrides: Any,
) -> Dataset:
    """A CT image with patient/study/series fields, a sequence and a private block."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyDate = "20240115"
    ds.SeriesDate = "20240115"
    ds.AcquisitionDate = "20240115"
    ds.ContentDate = "20240115"
    ds.StudyTime = "101500.123"
    ds.AccessionNumber = "ACC123"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME Medical"
    ds.InstitutionName = "Fake General Hospital"
    ds.StudyDescription = "CT CHEST W/O"
    ds.SeriesDescription = "AXIAL 1.25mm"
    ds.ManufacturerModelName = "Scanotron 9000"
    ds.PatientName = "Doe^Jane^Q"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.PatientWeight = "61.5"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.25"
    ds.KVP = "120"
    ds.SoftwareVersions = ["1.0", "2.3b"]
    ds.ProtocolName = "Chest routine"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "S1"
    ds.SeriesNumber = 3
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [-125.0, -125.0, float(-instance_number)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = STUDY + ".9"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = STUDY + ".77"
    ref.PatientName = "Other^Person"
    ds.ReferencedImageSequence = Sequence([ref, Dataset()])
    block = ds.private_block(0x0011, "ACME 1.1", create=True)
    block.add_new(0x01, "LO", "Fake MRN 445566")
    block.add_new(0x02, "DS", "3.5")
    block.add_new(0x03, "OB", b"\x01\x02\x03\x04")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = rows
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.WindowCenter = ["40", "400"]
    ds.WindowWidth = ["400", "1500"]
    arr = (np.arange(rows * rows, dtype=np.int16) % 2000) - 1000
    ds.PixelData = arr.tobytes()
    with config.disable_value_validation():
        for key, value in overrides.items():
            if key in ds:
                delattr(ds, key)
            if value is not None:
                setattr(ds, key, value)
    return ds


def to_bytes(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Part 10 bytes of ``ds`` in an uncompressed transfer syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID") or CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buffer = io.BytesIO()
    implicit = transfer_syntax == ImplicitVRLittleEndian
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return buffer.getvalue()


def instance_bytes(transfer_syntax: str = ExplicitVRLittleEndian, **kwargs: Any) -> bytes:
    """Shortcut: :func:`make_dataset` then :func:`to_bytes`."""
    return to_bytes(make_dataset(**kwargs), transfer_syntax)
