"""Builders for derived objects: a SEG over the CT and SRs whose references really resolve.

They take the already-built datasets of the series they reference, so every referenced
UID is the UID of an instance in the sample.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from pydicom import Dataset
from pydicom.pixels.utils import pack_bits
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID

from dicomhub.sample import phantom
from dicomhub.sample.modules import Context, add_frame_of_reference, code, da, new_instance, tm

SEGMENTATION = UID("1.2.840.10008.5.1.4.1.1.66.4")
COMPREHENSIVE_SR = UID("1.2.840.10008.5.1.4.1.1.88.33")
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")


def _ref(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


def _referenced(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    return [ds for number in ctx.series.references for ds in built.get(number, [])]


def _evidence(ctx: Context, instances: list[Dataset]) -> Sequence:
    """Hierarchical SOP Instance Reference macro: study > series > instances."""
    by_series: dict[str, list[Dataset]] = {}
    for ds in instances:
        by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    series_items = []
    for series_uid, members in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedSOPSequence = Sequence([_ref(ds) for ds in members])
        series_items.append(item)
    study = Dataset()
    study.StudyInstanceUID = ctx.study.uid
    study.ReferencedSeriesSequence = Sequence(series_items)
    return Sequence([study])


def build_seg(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """A binary 'liver' SEG with one frame per source CT slice."""
    sources = _referenced(ctx, built)
    when = ctx.series.start
    ds = new_instance(ctx, SEGMENTATION, 1, when)
    ds.Modality = "SEG"
    add_frame_of_reference(ds, ctx)
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentLabel = "LIVER"
    ds.ContentDescription = f"Liver contoured by {ctx.patient.radiologist.display}"
    ds.ContentCreatorName = ctx.patient.radiologist.dicom
    ds.SegmentationType = "BINARY"
    ds.LossyImageCompression = "00"
    segment = Dataset()
    segment.SegmentNumber = 1
    segment.SegmentLabel = "Liver"
    segment.SegmentAlgorithmType = "MANUAL"
    segment.SegmentedPropertyCategoryCodeSequence = Sequence(
        [code("123037004", "SCT", "Anatomical Structure")]
    )
    segment.SegmentedPropertyTypeCodeSequence = Sequence([code("10200004", "SCT", "Liver")])
    ds.SegmentSequence = Sequence([segment])
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = sources[0].SeriesInstanceUID
    series_ref.ReferencedInstanceSequence = Sequence([_ref(src) for src in sources])
    ds.ReferencedSeriesSequence = Sequence([series_ref])
    _seg_dimensions(ds, ctx)
    _seg_frames(ds, sources)
    return [ds]


def _seg_dimensions(ds: Dataset, ctx: Context) -> None:
    dim_uid = ctx.uids.uid(ctx.patient.index, ctx.study.index, ctx.series.number, "dim")
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionOrganizationType = "3D"
    index = []
    for pointer, group, label in (
        (Tag(0x0062, 0x000B), Tag(0x0062, 0x000A), "ReferencedSegmentNumber"),
        (Tag(0x0020, 0x0032), Tag(0x0020, 0x9113), "ImagePositionPatient"),
    ):
        item = Dataset()
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = group
        item.DimensionDescriptionLabel = label
        index.append(item)
    ds.DimensionIndexSequence = Sequence(index)


def _seg_frames(ds: Dataset, sources: list[Dataset]) -> None:
    first = sources[0]
    rows, cols = int(first.Rows), int(first.Columns)
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.SliceThickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, masks = [], []
    for position, src in enumerate(sources, 1):
        fraction = (position - 1) / max(1, len(sources) - 1)
        masks.append(phantom.liver_mask(rows, cols, fraction))
        frame = Dataset()
        content = Dataset()
        content.DimensionIndexValues = [1, position]
        frame.FrameContentSequence = Sequence([content])
        plane = Dataset()
        plane.ImagePositionPatient = src.ImagePositionPatient
        frame.PlanePositionSequence = Sequence([plane])
        ident = Dataset()
        ident.ReferencedSegmentNumber = 1
        frame.SegmentIdentificationSequence = Sequence([ident])
        source = _ref(src)
        source.PurposeOfReferenceCodeSequence = Sequence(
            [code("121322", "DCM", "Source image for image processing operation")]
        )
        derivation = Dataset()
        derivation.DerivationCodeSequence = Sequence([code("113076", "DCM", "Segmentation")])
        derivation.SourceImageSequence = Sequence([source])
        frame.DerivationImageSequence = Sequence([derivation])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 1
    ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    packed = pack_bits(np.stack(masks).astype(np.uint8))
    ds.PixelData = packed + b"\x00" * (len(packed) % 2)


def _item(relation: str, value_type: str, concept: Dataset) -> Dataset:
    item = Dataset()
    item.RelationshipType = relation
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    return item


def _text(relation: str, concept: Dataset, text: str) -> Dataset:
    item = _item(relation, "TEXT", concept)
    item.TextValue = text
    return item


def _image(ds: Dataset, value_type: str = "IMAGE") -> Dataset:
    item = _item("INFERRED FROM", value_type, code("121112", "DCM", "Source of Measurement"))
    item.ReferencedSOPSequence = Sequence([_ref(ds)])
    return item


def _report_tree(ctx: Context, refs: list[Dataset], comprehensive: bool) -> list[Dataset]:
    """Observer context, then findings nested three levels deep with names and dates."""
    patient, study = ctx.patient, ctx.study
    observer = _item("HAS OBS CONTEXT", "PNAME", code("121008", "DCM", "Person Observer Name"))
    observer.PersonName = patient.radiologist.dicom
    exam_date = _item("HAS ACQ CONTEXT", "DATE", code("111060", "DCM", "Study Date"))
    exam_date.Date = da(study.start)
    comment = _text(
        "INFERRED FROM" if comprehensive else "HAS PROPERTIES",
        code("121106", "DCM", "Comment"),
        f"Discussed with {patient.referring.display} on {study.date.isoformat()}; "
        f"patient {patient.name.display} (MRN {patient.mrn}) informed.",
    )
    finding = _text(
        "CONTAINS",
        code("121071", "DCM", "Finding"),
        f"Hypodense lesion, {patient.name.display}, DOB {patient.birth_date.isoformat()}.",
    )
    images = [r for r in refs if r.SOPClassUID != SEGMENTATION]
    children = [comment] + [_image(r) for r in images[:1]]
    children += [_image(r, "COMPOSITE") for r in refs if r.SOPClassUID == SEGMENTATION]
    finding.ContentSequence = Sequence(children)
    findings = _item("CONTAINS", "CONTAINER", code("121070", "DCM", "Findings"))
    findings.ContinuityOfContent = "SEPARATE"
    findings.ContentSequence = Sequence([finding])
    impression = _item("CONTAINS", "CONTAINER", code("121076", "DCM", "Conclusions"))
    impression.ContinuityOfContent = "SEPARATE"
    impression.ContentSequence = Sequence(
        [
            _text(
                "CONTAINS",
                code("121077", "DCM", "Conclusion"),
                f"Dictated by {patient.radiologist.display}, {patient.institution.name}.",
            )
        ]
    )
    return [observer, exam_date, findings, impression]


def _build_sr(
    ctx: Context, built: dict[int, list[Dataset]], sop_class: UID, comprehensive: bool
) -> list[Dataset]:
    refs = _referenced(ctx, built)
    when = ctx.series.start + timedelta(minutes=25)
    ds = new_instance(ctx, sop_class, 1, when)
    ds.Modality = "SR"
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.PerformedProcedureCodeSequence = Sequence([])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = Sequence([template])
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    verifier = Dataset()
    verifier.VerifyingObserverName = ctx.patient.radiologist.dicom
    verifier.VerifyingObserverIdentificationCodeSequence = Sequence([])
    verifier.VerifyingOrganization = ctx.patient.institution.name
    verifier.VerificationDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.VerifyingObserverSequence = Sequence([verifier])
    request = Dataset()
    request.StudyInstanceUID = ctx.study.uid
    request.AccessionNumber = ctx.study.accession
    request.RequestedProcedureID = f"RP{ctx.study.accession}"[:16]
    request.RequestedProcedureDescription = ctx.study.procedure[:64]
    request.RequestedProcedureCodeSequence = Sequence([])
    request.PlacerOrderNumberImagingServiceRequest = f"PL{ctx.patient.mrn}"
    request.FillerOrderNumberImagingServiceRequest = f"FL{ctx.study.accession}"
    request.ReferencedStudySequence = Sequence([])
    ds.ReferencedRequestSequence = Sequence([request])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(ctx, refs)
    ds.ContentSequence = Sequence(_report_tree(ctx, refs, comprehensive))
    ds.ContentDate = da(when)
    ds.ContentTime = tm(when)
    return [ds]


def build_sr(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """Comprehensive SR report over the CT and the SEG."""
    return _build_sr(ctx, built, COMPREHENSIVE_SR, comprehensive=True)


def build_sr_text(ctx: Context, built: dict[int, list[Dataset]]) -> list[Dataset]:
    """Basic Text SR preliminary report over the MR series."""
    return _build_sr(ctx, built, BASIC_TEXT_SR, comprehensive=False)
