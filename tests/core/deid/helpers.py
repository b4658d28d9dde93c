"""Builders shared by the de-identification tests: recipes and synthetic datasets."""

from __future__ import annotations

import io
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from dicomhub.core.deid import Recipe

ROOT = "1.2.826.0.1.3680043.10.999"
SECRET = "test-secret-0123456789abcdef"


def recipe(**overrides: Any) -> Recipe:
    """A valid recipe; keyword arguments override any field."""
    fields: dict[str, Any] = {
        "kit_id": "kit-test",
        "uid_root": ROOT,
        "uid_secret": SECRET,
        "date_offset_days": -1000,
    }
    fields.update(overrides)
    return Recipe(**fields)


def item(**attrs: Any) -> Dataset:
    """A sequence item with the given keyword attributes."""
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def ct(**attrs: Any) -> Dataset:
    """A small CT instance with file meta, PHI in the usual places, and ``attrs`` on top."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4.100.1")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "CTSCANNER"
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.100.1"
    ds.StudyInstanceUID = "1.2.3.4.1"
    ds.SeriesInstanceUID = "1.2.3.4.2"
    ds.FrameOfReferenceUID = "1.2.3.4.3"
    ds.StudyDate = "20200115"
    ds.StudyTime = "101600"
    ds.Modality = "CT"
    ds.PatientName = "Doe^John"
    ds.PatientID = "MRN12345"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "M"
    ds.PatientAge = "060Y"
    ds.InstitutionName = "General Hospital"
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 16
    ds.PixelData = b"\x00" * 32
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def roundtrip(ds: Dataset) -> Dataset:
    """Write and read back, so the engine sees raw (undecoded) elements as from a file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(io.BytesIO(buf.getvalue()))


def seq(*items: Dataset) -> Sequence:
    return Sequence(list(items))
