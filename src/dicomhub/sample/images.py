"""Builders for acquired images: CT (and its localizer), MR, PT, US and secondary capture.

Each builder returns the uncompressed datasets of one series; ``codecs`` encodes them
afterwards, so geometry and PHI do not depend on the transfer syntax.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dicomhub.sample import phantom
from dicomhub.sample.modules import (
    Context,
    add_frame_of_reference,
    add_plane,
    code,
    da,
    ds_str,
    new_instance,
    set_pixels,
    tm,
)
from dicomhub.sample.private import add_private

CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.4")
PET_IMAGE = UID("1.2.840.10008.5.1.4.1.1.128")
US_IMAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")
FOV_MM = {"ct": 400.0, "mr": 230.0, "pt": 600.0}


def _image_comment(ctx: Context) -> str:
    patient = ctx.patient
    return (
        f"Pt {patient.name.display}, DOB {patient.birth_date.isoformat()}, "
        f"MRN {patient.mrn}, scanned {ctx.study.date.isoformat()}"
    )


def _slices(ctx: Context, base: str, thickness: float) -> list[tuple[int, float, float]]:
    """(instance number, z position, fraction of the scan range) for each slice."""
    count = ctx.series.count
    start = 100.0 if base == "mr" else -50.0
    return [
        (n + 1, start - n * thickness, n / max(1, count - 1) if count > 1 else 0.5)
        for n in range(count)
    ]


def _acquired(ctx: Context, sop_class: UID, n: int, modality: str) -> Dataset:
    when = ctx.series.start + timedelta(seconds=2 * n)
    ds = new_instance(ctx, sop_class, n, when)
    ds.Modality = modality
    ds.AcquisitionNumber = 1
    ds.AcquisitionDate = da(when)
    ds.AcquisitionTime = tm(when)
    ds.PatientPosition = "HFS"
    ds.ImageComments = _image_comment(ctx)
    ds.BurnedInAnnotation = "NO"
    return ds


def _reference_localizer(ds: Dataset, ctx: Context, built: dict[int, list[Dataset]]) -> None:
    for number in ctx.series.references:
        refs = built.get(number, [])
        ds.ReferencedImageSequence = Sequence(
            [_ref_item(ref.SOPClassUID, ref.SOPInstanceUID) for ref in refs]
        )


def _ref_item(sop_class: UID, sop_uid: UID) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    return item


def build_ct(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """Axial CT slices in HU+1024 stored as int16 with RescaleIntercept -1024."""
    rows, cols = ctx.series.size
    lung = "LUNG" in ctx.series.description
    thickness = 1.25 if lung else (3.0 if ctx.series.scanner.kind == "petct" else 5.0)
    spacing = FOV_MM["ct"] / cols
    out = []
    for n, z, fraction in _slices(ctx, "ct", thickness):
        ds = _acquired(ctx, CT_IMAGE, n, "CT")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        add_frame_of_reference(ds, ctx)
        add_plane(ds, rows, cols, spacing, z, thickness)
        ds.KVP = "120"
        ds.XRayTubeCurrent = 180 + n
        ds.ExposureTime = 500
        ds.ConvolutionKernel = "LUNG" if lung else "STANDARD"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600" if lung else "40"
        ds.WindowWidth = "1500" if lung else "400"
        hu = phantom.ct_slice(rows, cols, fraction, ctx.rng)
        set_pixels(ds, (hu + 1024).astype(np.int16))
        _reference_localizer(ds, ctx, built)
        add_private(ds, ctx, n)
        out.append(ds)
    return out


def build_ct_scout(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """One coronal localizer (topogram)."""
    rows, cols = ctx.series.size
    ds = _acquired(ctx, CT_IMAGE, 1, "CT")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    add_frame_of_reference(ds, ctx)
    spacing = 500.0 / rows
    ds.ImagePositionPatient = [ds_str(-250.0), "0", ds_str(150.0)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.PixelSpacing = [ds_str(spacing), ds_str(spacing)]
    ds.SliceThickness = "1"
    ds.KVP = "100"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "100"
    ds.WindowWidth = "1000"
    body = phantom.ct_slice(rows, cols, 0.5, ctx.rng)
    set_pixels(ds, (body + 1024).astype(np.int16))
    add_private(ds, ctx, 0)
    return [ds]


def build_mr(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """Axial brain MR slices, unsigned 16-bit with 12 bits stored."""
    rows, cols = ctx.series.size
    t1 = "t1" in ctx.series.description
    spacing = FOV_MM["mr"] / cols
    out = []
    for n, z, fraction in _slices(ctx, "mr", 5.0):
        ds = _acquired(ctx, MR_IMAGE, n, "MR")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        add_frame_of_reference(ds, ctx)
        add_plane(ds, rows, cols, spacing, z, 5.0)
        ds.SpacingBetweenSlices = "5"
        ds.ScanningSequence = ["GR", "IR"] if t1 else ["SE"]
        ds.SequenceVariant = ["SK", "SP", "MP"] if t1 else ["SK", "SP", "OSP"]
        ds.ScanOptions = "IR" if t1 else "PFP"
        ds.MRAcquisitionType = "3D" if t1 else "2D"
        ds.SequenceName = "*tfl3d1_16ns" if t1 else "*tse2d1_15"
        ds.RepetitionTime = "2300" if t1 else "6000"
        ds.EchoTime = "2.32" if t1 else "100"
        ds.EchoTrainLength = 1 if t1 else 15
        if t1:
            ds.InversionTime = "900"
        ds.MagneticFieldStrength = "3"
        ds.ImagingFrequency = "123.2"
        ds.ImagedNucleus = "1H"
        pixels = phantom.mr_slice(rows, cols, fraction, ctx.rng)
        set_pixels(ds, pixels.astype(np.uint16))
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.WindowCenter = "600"
        ds.WindowWidth = "1200"
        add_private(ds, ctx, n)
        out.append(ds)
    return out


def build_pt(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """Static FDG PET slices; each slice has its own RescaleSlope, as scanners do."""
    rows, cols = ctx.series.size
    spacing = FOV_MM["pt"] / cols
    patient = ctx.patient
    injection = ctx.study.start - timedelta(minutes=62)
    count = ctx.series.count
    out = []
    for n, z, fraction in _slices(ctx, "pt", 3.0):
        ds = _acquired(ctx, PET_IMAGE, n, "PT")
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        add_frame_of_reference(ds, ctx)
        add_plane(ds, rows, cols, spacing, z, 3.0)
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
        ds.DecayCorrection = "START"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.AttenuationCorrectionMethod = "measured,AC_CT"
        ds.ReconstructionMethod = "OSEM3D 2i21s"
        ds.NumberOfSlices = count
        ds.ImageIndex = n
        ds.FrameReferenceTime = "0"
        ds.ActualFrameDuration = 180000
        ds.DecayFactor = "1.02"
        ds.DoseCalibrationFactor = "1"
        drug = Dataset()
        drug.Radiopharmaceutical = "Fludeoxyglucose"
        drug.RadiopharmaceuticalStartTime = tm(injection)
        drug.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
        drug.RadionuclideTotalDose = "370000000" if patient.sex == "M" else "296000000"
        drug.RadionuclideHalfLife = "6586.2"
        drug.RadionuclidePositronFraction = "0.97"
        drug.RadionuclideCodeSequence = Sequence([code("C-111A1", "SRT", "^18^Fluorine")])
        ds.RadiopharmaceuticalInformationSequence = Sequence([drug])
        activity = phantom.pt_slice(rows, cols, fraction, ctx.rng)
        slope = max(float(activity.max()), 1.0) / 32767.0
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = ds_str(slope)
        stored = np.clip(np.rint(activity / float(ds.RescaleSlope)), 0, 32767)
        set_pixels(ds, stored.astype(np.int16))
        add_private(ds, ctx, n)
        out.append(ds)
    return out


def build_us(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """One RGB ultrasound frame with the patient's name and date burned into the pixels."""
    rows, cols = ctx.series.size
    ds = _acquired(ctx, US_IMAGE, 1, "US")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.BurnedInAnnotation = "YES"
    ds.PatientOrientation = ""
    ds.LossyImageCompression = "00"
    image = phantom.ultrasound(rows, cols, ctx.rng)
    patient = ctx.patient
    phantom.burn_text(
        image,
        [
            f"{patient.name.dicom} {patient.mrn}",
            f"{patient.institution.short} {ctx.study.date.isoformat()}",
        ],
    )
    set_pixels(ds, image, "RGB")
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = rows // 4
    region.RegionLocationMaxX1 = cols - 1
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.03
    region.PhysicalDeltaY = 0.03
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.TransducerData = ["C5-1", "", ""]
    return [ds]


def build_sc(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """A console screenshot (dose report) as secondary capture, text burned in."""
    rows, cols = ctx.series.size
    ds = _acquired(ctx, SC_IMAGE, 1, "OT")
    del ds.AcquisitionNumber
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.BurnedInAnnotation = "YES"
    ds.PatientOrientation = ""
    ds.DateOfSecondaryCapture = da(ctx.series.start)
    ds.TimeOfSecondaryCapture = tm(ctx.series.start)
    screen = np.zeros((rows, cols), dtype=np.uint8)
    patient = ctx.patient
    phantom.burn_text(
        screen,
        [f"{patient.name.dicom}", f"ID {patient.mrn}", "CTDIvol 12.4 mGy DLP 864"],
        value=255,
    )
    screen[rows // 2 :: 4, 4:-4] = 200
    set_pixels(ds, screen)
    return [ds]
