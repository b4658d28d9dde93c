"""A small published CT study with real image modules, for the viewer tests.

The shared test catalogue stores 4 x 4 images whose recorded headers lack the
image pixel and plane modules a viewer needs; a viewer reads those from the
WADO-RS metadata, as it would from any archive.  This catalogue writes a few
64 x 64 CT slices of a disc phantom, records each header exactly as promotion
does (:func:`dicomhub.core.dicom.header.read_header`), and stores the files
in a real blob store.  Each slice can be stored in its own transfer syntax, so
the same study serves the compressed-frame tests.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from sqlalchemy.orm import Session

from dicomhub.context import PublicContext
from dicomhub.core.db import (
    Access,
    Collection,
    Instance,
    Patient,
    Series,
    Study,
    make_engine,
    make_sessionmaker,
)
from dicomhub.core.dicom.header import read_header
from dicomhub.core.store.base import BlobStore, blob_key_for
from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.settings import load_settings
from dicomhub.web.app import create_public_app
from tests.fixtures.http import serve_app
from tests.fixtures.public_data import CT_IMAGE, make_uid

COLLECTION = "VIEWER-CT-DEMO"
SIZE = 64


@dataclass
class ViewerStudy:
    """The UIDs written, and each instance's original pixel array."""

    study_uid: str
    series_uid: str
    sop_uids: list[str] = field(default_factory=list)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)
    syntaxes: dict[str, str] = field(default_factory=dict)


def phantom(index: int) -> np.ndarray:
    """A disc of soft tissue with a brighter insert, in stored values (HU + 1024)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    centre = (SIZE - 1) / 2
    image = np.zeros((SIZE, SIZE), dtype=np.uint16)
    disc = (x - centre) ** 2 + (y - centre) ** 2 < (SIZE * 0.42) ** 2
    image[disc] = 1024 + 40 + (x[disc] % 8) * 5
    insert = (x - centre - 8 - index) ** 2 + (y - centre) ** 2 < 36
    image[insert] = 1024 + 300
    return image


def ct_slice(study: ViewerStudy, number: int, syntax: str) -> bytes:
    """One CT slice as a Part 10 file in ``syntax`` (encoded by pydicom's own encoders)."""
    sop_uid = make_uid(study.series_uid, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = study.series_uid
    ds.FrameOfReferenceUID = make_uid(study.series_uid, "for")
    ds.PatientID = ds.PatientName = "VIEWER-001"
    ds.StudyDate = ds.SeriesDate = "20240102"
    ds.StudyDescription = "CT chest"
    ds.SeriesDescription = "AXIAL phantom"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-32.0, -32.0, float(number) * 5]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 5.0
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    _overlay(ds)
    pixels = phantom(number)
    ds.PixelData = pixels.tobytes()
    if syntax == JPEGBaseline8Bit:
        pixels = _eight_bit(ds, pixels)
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(UID(syntax), pixels, generate_instance_uid=False)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    study.sop_uids.append(sop_uid)
    study.pixels[sop_uid] = pixels
    study.syntaxes[sop_uid] = syntax
    return buffer.getvalue()


def _overlay(ds: Dataset) -> None:
    """A 128 x 128 graphics overlay: bulk data (2 KB) outside the pixel data, as scanners add."""
    ds.add_new(0x60000010, "US", 128)  # OverlayRows
    ds.add_new(0x60000011, "US", 128)  # OverlayColumns
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    ds.add_new(0x60000100, "US", 1)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 0)  # OverlayBitPosition
    bits = np.zeros((128, 128), dtype=np.uint8)
    bits[32:96, 32:96] = 1
    ds.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())


def _eight_bit(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """Re-make ``ds`` as an 8-bit JPEG baseline image (pydicom cannot encode it; Pillow can).

    Returns the 8-bit pixels the JPEG was made from (the decoder gives them back
    within a few grey levels: baseline is lossy).
    """
    windowed = np.clip((pixels.astype(np.int32) - 1024 + 160) * 255 // 400, 0, 255)
    eight = windowed.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(eight, mode="L").save(buffer, format="JPEG", quality=95)
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.RescaleIntercept = 0
    ds.WindowCenter = 128
    ds.WindowWidth = 256
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    return eight


def write_viewer_study(session: Session, store: BlobStore, syntaxes: Sequence[str]) -> ViewerStudy:
    """Publish one public CT study, one slice per entry of ``syntaxes``, in that order."""
    collection = Collection(
        name=COLLECTION,
        access=Access.PUBLIC,
        description="<p>CT phantom for viewer tests.</p>",
        license_name="Creative Commons Attribution 4.0 International",
        license_url="https://creativecommons.org/licenses/by/4.0/",
        citation="Example (2026) Viewer demo. dicomhub.",
        doi="https://doi.org/10.0000/dicomhub.viewer",
    )
    session.add(collection)
    session.flush()
    patient = Patient(collection_id=collection.id, patient_id="VIEWER-001", patient_name="V")
    session.add(patient)
    session.flush()
    study_row = Study(
        patient_id=patient.id,
        study_instance_uid=make_uid(COLLECTION, "study"),
        study_date=date(2024, 1, 2),
        study_description="CT chest",
    )
    session.add(study_row)
    session.flush()
    study = ViewerStudy(study_row.study_instance_uid, make_uid(COLLECTION, "series"))
    series = Series(
        study_id=study_row.id,
        collection_id=collection.id,
        series_instance_uid=study.series_uid,
        series_number=1,
        series_description="AXIAL phantom",
        modality="CT",
        body_part_examined="CHEST",
        sop_class_uid=CT_IMAGE,
    )
    session.add(series)
    session.flush()
    total = 0
    for number, syntax in enumerate(syntaxes, start=1):
        data = ct_slice(study, number, syntax)
        sha256 = hashlib.sha256(data).hexdigest()
        key = blob_key_for(sha256)
        store.put(key, data)
        session.add(
            Instance(
                series_id=series.id,
                sop_instance_uid=study.sop_uids[-1],
                sop_class_uid=CT_IMAGE,
                transfer_syntax_uid=syntax,
                instance_number=number,
                size=len(data),
                sha256=sha256,
                md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                blob_key=key,
                header=read_header(data).to_json(),
            )
        )
        total += len(data)
    series.instance_count = len(syntaxes)
    series.total_size = total
    session.commit()
    return study


@contextmanager
def served_archive(
    folder: Path, db_url: str, syntaxes: Sequence[str], cors_origins: Sequence[str] = ()
) -> Iterator[tuple[str, ViewerStudy]]:
    """The public app over a migrated database holding one viewer study; yields its URL."""
    store = FilesystemStore(folder / "store")
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            study = write_viewer_study(session, store, syntaxes)
    finally:
        engine.dispose()
    settings = load_settings(
        data_dir=folder,
        secret_key="s" * 32,
        public_database_url=db_url,
        public_store=(folder / "store").as_uri(),
        cors_origins=list(cors_origins),
    ).public()
    context = PublicContext.from_settings(settings)
    try:
        with serve_app(create_public_app(settings, context)) as url:
            yield url, study
    finally:
        context.close()


def sqlite_copy(template: Path, folder: Path) -> str:
    """A migrated SQLite database for one test module (a copy of the session template)."""
    shutil.copyfile(template, folder / "public.db")
    return f"sqlite:///{folder / 'public.db'}"
