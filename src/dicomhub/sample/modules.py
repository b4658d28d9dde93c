"""DICOM modules shared by every sample instance (patient, study, series, equipment, SOP).

The PHI a hospital PACS really sends sits in these modules, including nested sequences
three levels deep, so de-identification has something realistic to remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dicomhub.sample.phi import FakePatient, age_string
from dicomhub.sample.plan import Scanner, SeriesPlan, StudyPlan
from dicomhub.sample.uids import UidFactory


@dataclass(frozen=True)
class Context:
    """Everything a builder needs to make the instances of one series."""

    patient: FakePatient
    study: StudyPlan
    series: SeriesPlan
    uids: UidFactory
    rng: np.random.Generator

    def sop_uid(self, n: int) -> UID:
        return self.uids.uid(self.patient.index, self.study.index, self.series.number, n)


def da(when: datetime) -> str:
    return when.strftime("%Y%m%d")


def tm(when: datetime) -> str:
    return when.strftime("%H%M%S")


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item (Code Value, Coding Scheme Designator, Code Meaning)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def ds_str(value: float) -> str:
    """A DS string that always fits the 16-character limit."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def new_instance(ctx: Context, sop_class: UID, n: int, when: datetime) -> Dataset:
    """File meta, SOP Common and every shared module for instance ``n`` of the series."""
    ds = Dataset()
    sop_uid = ctx.sop_uid(n)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ctx.series.transfer_syntax
    meta.ImplementationClassUID = ctx.series.scanner.implementation_uid
    meta.ImplementationVersionName = ctx.series.scanner.implementation_version
    meta.SourceApplicationEntityTitle = ctx.series.scanner.ae_title
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = da(when)
    ds.InstanceCreationTime = tm(when)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    add_study(ds, ctx)
    add_series(ds, ctx)
    add_equipment(ds, ctx.series.scanner)
    add_patient(ds, ctx)
    ds.InstanceNumber = n
    ds.ContentDate = da(when)
    ds.ContentTime = tm(when)
    return ds


def add_patient(ds: Dataset, ctx: Context) -> None:
    """Patient module with its nested identifiers (issuer qualifiers are 3 levels deep)."""
    patient, study = ctx.patient, ctx.study
    ds.PatientName = patient.name.dicom
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = patient.institution.short
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
    ds.PatientSex = patient.sex
    ds.PatientAge = age_string(patient.birth_date, study.date)
    ds.PatientSize = "1.72" if patient.sex == "M" else "1.64"
    ds.PatientWeight = "81" if patient.sex == "M" else "63"
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = patient.phone
    ds.PatientComments = f"Call {patient.name.display} at {patient.phone} before contrast."
    facility = Dataset()
    facility.LocalNamespaceEntityID = patient.institution.name
    qualifiers = Dataset()
    qualifiers.AssigningFacilitySequence = Sequence([facility])
    qualifiers.IdentifierTypeCode = "NI"
    other = Dataset()
    other.PatientID = patient.national_id
    other.IssuerOfPatientID = "STATE HEALTH REGISTRY"
    other.TypeOfPatientID = "TEXT"
    other.IssuerOfPatientIDQualifiersSequence = Sequence([qualifiers])
    ds.OtherPatientIDsSequence = Sequence([other])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    ref.ReferencedSOPInstanceUID = ctx.uids.uid(patient.index, "patient")
    ds.ReferencedPatientSequence = Sequence([ref])


def add_study(ds: Dataset, ctx: Context) -> None:
    """General Study module: date, time, accession and the people who ordered it."""
    study, patient = ctx.study, ctx.patient
    ds.StudyInstanceUID = study.uid
    ds.StudyDate = da(study.start)
    ds.StudyTime = tm(study.start)
    ds.AccessionNumber = study.accession
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = patient.institution.name
    ds.IssuerOfAccessionNumberSequence = Sequence([issuer])
    ds.StudyID = study.study_id
    ds.ReferringPhysicianName = patient.referring.dicom
    ds.NameOfPhysiciansReadingStudy = patient.radiologist.dicom
    ds.StudyDescription = study.description


def add_series(ds: Dataset, ctx: Context) -> None:
    """General Series module with a Request Attributes item holding free-text PHI."""
    series, study, patient = ctx.series, ctx.study, ctx.patient
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.SeriesDate = da(series.start)
    ds.SeriesTime = tm(series.start)
    ds.PerformingPhysicianName = patient.performing.dicom
    ds.OperatorsName = patient.technologist.dicom
    ds.ProtocolName = f"{study.procedure[:40]} ({patient.institution.short})"
    ds.BodyPartExamined = study.body_part
    ds.PerformedProcedureStepStartDate = da(study.start)
    ds.PerformedProcedureStepStartTime = tm(study.start)
    ds.PerformedProcedureStepID = f"PPS{study.study_id}"
    ds.PerformedProcedureStepDescription = study.description[:64]
    request = Dataset()
    request.AccessionNumber = study.accession
    request.RequestedProcedureID = f"RP{study.accession}"[:16]
    request.RequestedProcedureDescription = study.description[:64]
    request.ScheduledProcedureStepID = f"SPS{study.study_id}"
    request.ScheduledProcedureStepDescription = f"{study.study_id} for {patient.name.display}"[:64]
    request.ReasonForTheRequestedProcedure = (
        f"Ordered by {patient.referring.display}; follow-up, DOB {patient.birth_date.isoformat()}"
    )[:64]
    request.RequestedProcedureCodeSequence = Sequence(
        [code(study.study_id[:2] + "ROUTINE", "99HOSP", study.procedure[:64])]
    )
    ds.RequestAttributesSequence = Sequence([request])


def add_equipment(ds: Dataset, scanner: Scanner) -> None:
    """General Equipment: the same values on every instance a scanner makes."""
    ds.Manufacturer = scanner.manufacturer
    ds.InstitutionName = scanner.institution.name
    ds.InstitutionAddress = scanner.institution.address
    ds.InstitutionalDepartmentName = scanner.institution.department
    ds.StationName = scanner.station
    ds.ManufacturerModelName = scanner.model
    ds.DeviceSerialNumber = scanner.serial
    ds.SoftwareVersions = scanner.software


def add_frame_of_reference(ds: Dataset, ctx: Context) -> None:
    ds.FrameOfReferenceUID = ctx.study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def add_plane(
    ds: Dataset, rows: int, cols: int, spacing: float, z: float, thickness: float
) -> None:
    """Image Plane module for an axial slice centred on the table axis."""
    ds.ImagePositionPatient = [
        ds_str(-spacing * (cols - 1) / 2),
        ds_str(-spacing * (rows - 1) / 2),
        ds_str(z),
    ]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = [ds_str(spacing), ds_str(spacing)]
    ds.SliceThickness = ds_str(thickness)
    ds.SliceLocation = ds_str(z)


def set_pixels(ds: Dataset, arr: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """Image Pixel module from an array (rows, cols) or (rows, cols, 3)."""
    ds.SamplesPerPixel = 3 if arr.ndim == 3 else 1
    ds.PhotometricInterpretation = photometric
    if arr.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
