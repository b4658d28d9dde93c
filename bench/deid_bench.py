"""De-identification throughput on a synthetic 512x512 CT corpus, against plain read+write.

Usage: python bench/deid_bench.py [N] — writes N CT files to a temp dir, then times
(1) pydicom dcmread + dcmwrite unchanged and (2) dcmread + dicomhub deidentify + dcmwrite,
on one core, and prints instances/s for both. The recipe is the TCIA-like one: Basic
Profile with modified dates, safe private and clean descriptors, the whole table applied.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dicomhub.core.deid import Deidentifier, Recipe

ROUNDS = 5


def make_ct(i: int, rng: np.random.Generator) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"1.2.840.99999.1.3.{i}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, kw, "20200115")
    for kw in ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime"):
        setattr(ds, kw, "101600")
    ds.AcquisitionDateTime = "20200115101600.123456-0500"
    ds.AccessionNumber = "ACC998877"
    ds.Modality = "CT"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.InstitutionName = "General Hospital"
    ds.ReferringPhysicianName = "Smith^Jane"
    ds.StationName = "CT01"
    ds.StudyDescription = "CT chest for John Doe 2020-01-15"
    ds.SeriesDescription = "AXIAL 5mm"
    ds.OperatorsName = "Tech^Tom"
    ds.ManufacturerModelName = "LightSpeed"
    ds.PatientName = "Doe^John"
    ds.PatientID = "MRN12345"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "M"
    ds.PatientAge = "060Y"
    ds.PatientWeight = "80"
    ds.SliceThickness = "5"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "SN123"
    ds.SoftwareVersions = "1.0"
    ds.ProtocolName = "CHEST ROUTINE"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = "1.2.840.99999.1.1"
    ds.SeriesInstanceUID = "1.2.840.99999.1.2"
    ds.StudyID = "S1"
    ds.SeriesNumber = "2"
    ds.InstanceNumber = str(i + 1)
    ds.ImagePositionPatient = [0, 0, -i * 5.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = "1.2.840.99999.1.4"
    ds.SliceLocation = str(-i * 5.0)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 512
    ds.Columns = 512
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = f"1.2.840.99999.1.3.{max(i - 1, 0)}"
    ds.ReferencedImageSequence = Sequence([ref])
    req = Dataset()
    req.RequestedProcedureID = "RP1"
    req.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = Sequence([req])
    block = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    block.add_new(0x01, "LO", "DOE^JOHN MRN12345")
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    for elem in range(0x20, 0x40):
        block.add_new(elem, "DS", "1.5")
    ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    return ds


def rate(files: list[Path], step: Callable[[Dataset], object] | None) -> tuple[float, float]:
    """Instances/s (wall clock, CPU time) for one pass: read, maybe de-identify, write.

    CPU time is reported too because on a shared machine the wall clock mostly measures
    the neighbours; both runs are single-threaded, so CPU time is the fair comparison.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        ds = dcmread(path)
        if step is not None:
            step(ds)
        ds.save_as(io.BytesIO(), enforce_file_format=True)
    return len(files) / (time.perf_counter() - wall), len(files) / (time.process_time() - cpu)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(0)
    recipe = Recipe(
        kit_id="bench",
        uid_root="1.2.826.0.1.3680043.10.999",
        uid_secret="bench-secret-0123456789",
        date_offset_days=-3210,
        retain_long_modified_dates=True,
        retain_safe_private=True,
        clean_descriptors=True,
        body_part_examined="CHEST",
    )
    engine = Deidentifier(recipe, patients={"MRN12345": ("BENCH-0001", None)})
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(n):
            path = Path(tmp) / f"ct{i:05d}.dcm"
            make_ct(i, rng).save_as(path, enforce_file_format=True)
            files.append(path)
        # Interleave the two so that load from elsewhere on the machine hits both alike.
        plain = deid = (0.0, 0.0)
        for _ in range(ROUNDS):
            plain = max(plain, rate(files, None))
            deid = max(deid, rate(files, engine))
    print(f"{n} CT 512x512 files, one core, best of {ROUNDS} interleaved rounds")
    print("                        wall inst/s   CPU inst/s")
    print(f"pydicom read+write      {plain[0]:11.1f} {plain[1]:12.1f}")
    print(f"read+deidentify+write   {deid[0]:11.1f} {deid[1]:12.1f}")
    print(f"ratio                   {deid[0] / plain[0]:11.0%} {deid[1] / plain[1]:12.0%}")


if __name__ == "__main__":
    main()
