"""Vendor private blocks: harmless numbers next to PHI copies, as real scanners write them.

GE CT consoles and Siemens scanners both copy patient and study identifiers into private
elements; a de-identifier that only handles public tags leaks them. Element numbers and
VRs follow pydicom's private dictionary so implicit-VR files read back with the right VR.
"""

from __future__ import annotations

from pydicom import Dataset

from dicomhub.sample.modules import Context

GE_IDEN = "GEMS_IDEN_01"
GE_ACQU = "GEMS_ACQU_01"
GE_PARM = "GEMS_PARM_01"
GE_PATI = "GEMS_PATI_01"
SIEMENS_CT = "SIEMENS CT VA0  COAD"
SIEMENS_MR = "SIEMENS MR HEADER"
SIEMENS_CSA = "SIEMENS CSA HEADER"


def add_private(ds: Dataset, ctx: Context, slice_index: int) -> None:
    """Add the private blocks of the series' scanner vendor (no-op for other vendors)."""
    vendor = ctx.series.scanner.manufacturer
    if vendor.startswith("GE"):
        _ge(ds, ctx, slice_index)
    elif vendor.startswith("SIEMENS"):
        _siemens(ds, ctx, slice_index)


def _ge(ds: Dataset, ctx: Context, slice_index: int) -> None:
    patient, study = ctx.patient, ctx.study
    iden = ds.private_block(0x0009, GE_IDEN, create=True)
    iden.add_new(0x02, "SH", "CT01")
    iden.add_new(0x04, "SH", "HiSpeed CT")
    iden.add_new(0x17, "LT", f"{ctx.series.description} {patient.name.dicom} {patient.mrn}")
    iden.add_new(0x27, "SL", 1_500_000_000 + slice_index)
    pati = ds.private_block(0x0011, GE_PATI, create=True)
    pati.add_new(0x10, "SS", 2)
    acqu = ds.private_block(0x0019, GE_ACQU, create=True)
    acqu.add_new(0x23, "DS", "39.375")
    acqu.add_new(0x24, "DS", f"{0.5 * slice_index + 1.2:.2f}")
    acqu.add_new(0x2A, "DS", "-12.5")
    acqu.add_new(0x2B, "DS", "412.75")
    parm = ds.private_block(0x0043, GE_PARM, create=True)
    parm.add_new(0x13, "SS", [190, 100, 300, 0, 0])
    parm.add_new(0x61, "UI", study.uid)
    parm.add_new(0x62, "SH", study.accession)
    parm.add_new(0x77, "SH", "ConnectPro")


def _csa(ctx: Context) -> bytes:
    """A CSA-like binary header whose ASCII part embeds the patient and referring names."""
    patient = ctx.patient
    text = (
        f'### ASCCONV BEGIN ###\ntPatientName = "{patient.name.dicom}"\n'
        f'tPatientID = "{patient.mrn}"\ntReferringPhysician = "{patient.referring.dicom}"\n'
        f'sProtSeriesDescription = "{ctx.series.description}"\n### ASCCONV END ###\n'
    )
    data = b"SV10\x04\x03\x02\x01" + text.encode("latin-1")
    return data + b"\x00" * (len(data) % 2)


def _siemens(ds: Dataset, ctx: Context, slice_index: int) -> None:
    if ctx.series.kind.startswith("ct"):
        coad = ds.private_block(0x0019, SIEMENS_CT, create=True)
        coad.add_new(0x10, "IS", "1085")
        coad.add_new(0x52, "DS", "23.04")
        coad.add_new(0x80, "CS", "WHOLEBODY")
        coad.add_new(0x82, "CS", "ADULT")
        coad.add_new(0xC2, "DA", ctx.patient.birth_date.strftime("%Y%m%d"))
    elif ctx.series.kind == "mr":
        header = ds.private_block(0x0019, SIEMENS_MR, create=True)
        header.add_new(0x0B, "DS", "2300")
        header.add_new(0x0C, "IS", "0")
        header.add_new(0x17, "DS", "1")
    csa = ds.private_block(0x0029, SIEMENS_CSA, create=True)
    csa.add_new(0x08, "CS", "IMAGE NUM 4")
    csa.add_new(0x18, "CS", "MR" if ctx.series.kind == "mr" else "PT")
    csa.add_new(0x19, "LO", "20220118")
    csa.add_new(0x20, "OB", _csa(ctx))
