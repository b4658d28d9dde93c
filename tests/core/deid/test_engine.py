"""Engine behaviour on synthetic datasets: every action code, nesting, private, repeating groups."""

from __future__ import annotations

import pytest
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from dicomhub.core.deid import Deidentifier, deidentify
from dicomhub.core.deid.table import KEEP, REMOVE, UID, compile_plan, private_action
from dicomhub.core.deid.uids import UidHasher

from .helpers import ROOT, SECRET, ct, item, recipe, roundtrip, seq

H = UidHasher(ROOT, SECRET.encode())


def deep_ct() -> Dataset:
    """A CT whose PHI and UIDs also sit three and four sequence levels deep."""
    level3 = item(
        CodeValue="121311",
        CodingSchemeDesignator="DCM",
        CodeMeaning="Localizer",
        OperatorsName="Deep^Operator",
        InstitutionAddress="1 Deep St",
        ReferencedSOPInstanceUID="1.2.3.4.100.7",
        ContributionDateTime="20200115101600+0100",
    )
    level3.ContributingEquipmentSequence = seq(item(InstitutionName="Deepest Hospital"))
    level2 = item(
        ReferencedSOPClassUID=CTImageStorage,
        ReferencedSOPInstanceUID="1.2.3.4.100.2",
        PurposeOfReferenceCodeSequence=seq(level3),
    )
    level1 = item(SeriesInstanceUID="1.2.3.4.2", ReferencedInstanceSequence=seq(level2))
    return ct(ReferencedSeriesSequence=seq(level1))


def deep(ds: Dataset) -> Dataset:
    level2: Dataset = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    return level2


@pytest.fixture(params=["memory", "file"])
def source(request: pytest.FixtureRequest) -> str:
    """Run each engine test on an in-memory dataset and on one read back from bytes."""
    return str(request.param)


def run(ds: Dataset, source: str, **kw: object) -> Dataset:
    ds = roundtrip(ds) if source == "file" else ds
    deidentify(ds, recipe(**kw))
    return roundtrip(ds)


def test_basic_codes_top_level(source: str) -> None:
    ds = ct(
        AccessionNumber="ACC1",
        InstitutionAddress="1 Main St",
        VerifyingObserverName="Obs^Erver",
        StationName="CT01",
        AcquisitionDate="20200115",
        SeriesDate="20200115",
    )
    out = run(ds, source)
    assert out.AccessionNumber == ""  # Z
    assert "InstitutionAddress" not in out  # X
    assert out.VerifyingObserverName == "ANONYMIZED"  # D
    assert out.StudyInstanceUID == H("1.2.3.4.1")  # U
    assert out.StudyDate == ""  # Z without a date option
    assert "StudyTime" in out
    assert out.StudyTime == ""
    assert out.AcquisitionDate == ""  # X/Z -> Z (conformant)
    assert out.SeriesDate == "19000101"  # X/D -> D
    assert out.InstitutionName == "ANONYMIZED"  # X/Z/D -> D
    assert out.StationName == "ANONYMIZED"
    assert out.PatientID == "ANONYMIZED"  # Z/D -> D without an ID map
    assert out.PatientName == ""
    assert "PatientAge" not in out
    assert out.Modality == "CT"
    assert out.PixelData == b"\x00" * 32


def test_minimal_compound_resolution(source: str) -> None:
    ds = ct(AcquisitionDate="20200115", SeriesDate="20200115")
    ds.ReferencedImageSequence = seq(item(ReferencedSOPInstanceUID="1.2.3.4.100.9"))
    out = run(ds, source, compound="minimal")
    assert "AcquisitionDate" not in out  # X/Z -> X
    assert "SeriesDate" not in out  # X/D -> X
    assert "InstitutionName" not in out  # X/Z/D -> X
    assert "ReferencedImageSequence" not in out  # X/Z/U* -> X
    assert out.PatientID == ""  # Z/D -> Z


def test_xzu_sequence_keeps_references_hashed(source: str) -> None:
    ds = ct()
    ds.ReferencedImageSequence = seq(
        item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID="1.2.3.4.100.9")
    )
    out = run(ds, source)
    ref = out.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == H("1.2.3.4.100.9")
    assert ref.ReferencedSOPClassUID == CTImageStorage


def test_nested_three_and_four_deep(source: str) -> None:
    out = run(deep_ct(), source)
    level1 = out.ReferencedSeriesSequence[0]
    assert level1.SeriesInstanceUID == H("1.2.3.4.2") == out.SeriesInstanceUID
    level2 = deep(out)
    assert level2.ReferencedSOPClassUID == CTImageStorage
    assert level2.ReferencedSOPInstanceUID == H("1.2.3.4.100.2")
    level3 = level2.PurposeOfReferenceCodeSequence[0]
    assert (level3.CodeValue, level3.CodeMeaning) == ("121311", "Localizer")
    assert level3.OperatorsName == "ANONYMIZED"
    assert "InstitutionAddress" not in level3
    assert level3.ReferencedSOPInstanceUID == H("1.2.3.4.100.7")
    assert "ContributionDateTime" not in level3
    assert level3.ContributingEquipmentSequence[0].InstitutionName == "ANONYMIZED"


def test_d_on_sequence_leaves_one_empty_item(source: str) -> None:
    ds = ct()
    ds.ContentSequence = seq(item(PersonName="Doe^John", TextValue="seen by Dr Who"))
    out = run(ds, source)
    assert len(out.ContentSequence) == 1
    assert len(out.ContentSequence[0]) == 0


def test_clean_structured_content_recurses(source: str) -> None:
    ds = ct()
    ds.ContentSequence = seq(item(PersonName="Doe^John", TextValue="seen by Dr Who"))
    out = run(ds, source, clean_structured_content=True)
    content = out.ContentSequence[0]
    assert content.PersonName == "ANONYMIZED"
    assert "TextValue" not in content  # not in the table: removed by the safe default


def test_unlisted_attributes_follow_the_safe_default(source: str) -> None:
    ds = ct(DeviceID="DEV-42", ImageType=["ORIGINAL", "PRIMARY"], ConvolutionKernel="B30f")
    ds.ReferencedSeriesSequence = seq(item(SeriesInstanceUID="1.2.3.4.2"))
    ds.SynchronizationFrameOfReferenceUID = "1.2.3.4.55"
    ds.add_new(0x00091010, "LO", "stray private without creator")
    out = run(ds, source)
    assert "DeviceID" not in out  # unlisted free text
    assert out.ImageType == ["ORIGINAL", "PRIMARY"]  # unlisted CS
    assert out.ConvolutionKernel == "B30f"  # unlisted but on the safe-text list
    assert out.SynchronizationFrameOfReferenceUID == H("1.2.3.4.55")
    assert 0x00091010 not in out


def test_file_meta(source: str) -> None:
    out = run(ct(), source)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == H("1.2.3.4.100.1")
    assert out.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_retain_uids(source: str) -> None:
    out = run(deep_ct(), source, retain_uids=True)
    assert out.StudyInstanceUID == "1.2.3.4.1"
    assert out.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.100.1"
    assert deep(out).ReferencedSOPInstanceUID == "1.2.3.4.100.2"


def test_modified_dates_shift_everything_by_the_offset(source: str) -> None:
    ds = ct(
        AcquisitionDateTime="20200115101600.123456-0500",
        DateOfLastCalibration=["20200101", "20191231"],
        ContentDate="20200229",
    )
    out = run(ds, source, retain_long_modified_dates=True)
    assert out.StudyDate == "20170420"  # -1000 days
    assert out.StudyTime == "101600"  # times kept
    assert out.AcquisitionDateTime == "20170420101600.123456-0500"
    assert list(out.DateOfLastCalibration) == ["20170406", "20170405"]  # X, but Modified C
    assert out.ContentDate == "20170604"  # 2020-02-29 - 1000 days
    assert out.PatientBirthDate == ""  # not a longitudinal date: Z
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_multi_valued_da_and_nested_dt(source: str) -> None:
    out = run(
        deep_ct(),
        source,
        retain_long_modified_dates=True,
        retain_device_identity=True,
    )
    level3 = deep(out).PurposeOfReferenceCodeSequence[0]
    assert level3.ContributionDateTime == "20170420101600+0100"
    ds = ct(DateOfLastCalibration=["20200101", "20191231"])
    out = run(ds, source, retain_long_modified_dates=True, retain_device_identity=True)
    assert list(out.DateOfLastCalibration) == ["20170406", "20170405"]


def test_full_dates_keep(source: str) -> None:
    out = run(ct(AcquisitionDateTime="20200115101600"), source, retain_long_full_dates=True)
    assert out.StudyDate == "20200115"
    assert out.AcquisitionDateTime == "20200115101600"
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_invalid_dates_removed_and_reported(source: str) -> None:
    ds = ct()
    with config.disable_value_validation():
        ds.add_new(0x00080020, "DA", "2020")  # partial date: invalid DA
        ds.add_new(0x0008002A, "DT", "202001")  # DT coarser than a day
        ds.add_new(0x00080021, "DA", "20201399")
        if source == "file":
            ds = roundtrip(ds)
    result = deidentify(ds, recipe(retain_long_modified_dates=True))
    assert "StudyDate" not in ds
    assert "AcquisitionDateTime" not in ds
    assert "SeriesDate" not in ds
    assert sorted(i.tag for i in result.issues) == [0x00080020, 0x00080021, 0x0008002A]
    assert all(i.reason == "invalid date removed" for i in result.issues)


def private_ct() -> Dataset:
    ds = ct()
    ds.private_block(0x0009, "GEMS_IDEN_01", create=True).add_new(0x01, "LO", "DOE^JOHN")
    # The safe GE acquisition block sits at an unusual block byte (0x11): matched by creator.
    ds.add_new(0x00190010, "LO", "SOMEONE ELSE")
    ds.add_new(0x00191023, "DS", "99")
    ds.add_new(0x00190011, "LO", "GEMS_ACQU_01")
    ds.add_new(0x00191123, "DS", "39.375")
    ds.add_new(0x00191199, "LO", "not on the safe list")
    ds.ReferencedSeriesSequence = seq(item(SeriesInstanceUID="1.2.3.4.2"))
    ds.ReferencedSeriesSequence[0].private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(
        0x10, "OB", b"PHI!"
    )
    return ds


def test_private_removed_unless_safe(source: str) -> None:
    out = run(private_ct(), source)
    assert not [e.tag for e in out.iterall() if e.tag.is_private and e.tag.group != 0x0013]
    out = run(private_ct(), source, retain_safe_private=True)
    privates = {int(e.tag): e.value for e in out if e.tag.is_private and e.tag.group != 0x0013}
    assert privates == {0x00190011: "GEMS_ACQU_01", 0x00191123: "39.375"}
    assert not [e for e in out.ReferencedSeriesSequence[0] if e.tag.is_private]


def test_keep_private_override(source: str) -> None:
    ds = ct()
    ds.private_block(0x0041, "ACME 1.0", create=True).add_new(0x05, "LO", "scanner mode 3")
    out = run(ds, source, keep_private=("0041,ACME 1.0,05",))
    assert out.private_block(0x0041, "ACME 1.0")[0x05].value == "scanner mode 3"


def test_private_dispositions() -> None:
    plan = compile_plan(recipe(retain_long_modified_dates=True), map_patients=False)
    assert private_action(plan, "hash_uid", "UI") == UID
    assert private_action(plan, "keep", "DS") == KEEP
    assert private_action(plan, "shift_date", "LO") == REMOVE


def overlay_ct() -> Dataset:
    ds = ct()
    for group in (0x6000, 0x6002):
        ds.add_new(group << 16 | 0x0010, "US", 4)
        ds.add_new(group << 16 | 0x0011, "US", 4)
        ds.add_new(group << 16 | 0x0022, "LO", "burned name")
        ds.add_new(group << 16 | 0x3000, "OW", b"\x01\x00")
        ds.add_new(group << 16 | 0x4000, "LT", "Doe^John 2020-01-15 arrow")
    ds.add_new(0x50000005, "US", 2)
    ds.add_new(0x50003000, "OW", b"\x00\x01")
    return ds


def test_overlays_and_curves_removed(source: str) -> None:
    for kw in ({}, {"clean_graphics": True}):
        out = run(overlay_ct(), source, **kw)
        assert not [e for e in out if e.tag.group & 0xFF00 in (0x5000, 0x6000)]


def test_overlays_kept_on_request(source: str) -> None:
    out = run(overlay_ct(), source, keep=("(60xx,3000)",), clean_graphics=True)
    assert out[0x60003000].value == b"\x01\x00"
    assert out[0x60020010].value == 4
    assert out[0x60004000].value == "arrow"  # comments cleaned of name and date
    assert 0x60000022 not in out  # unlisted free text
    assert not [e for e in out if e.tag.group == 0x5000]


def test_keep_and_remove_overrides(source: str) -> None:
    out = run(ct(), source, keep=("InstitutionName",), remove=("Modality",))
    assert out.InstitutionName == "General Hospital"
    assert "Modality" not in out


def test_clean_descriptors(source: str) -> None:
    def make() -> Dataset:
        return ct(
            StudyDescription="CT chest for John Doe 2020-01-15",
            SeriesDescription="AXIAL 5mm 15/01/2020 MRN12345",
            ProtocolName="CHEST",
        )

    out = run(make(), source)
    assert "StudyDescription" not in out
    assert out.ProtocolName == "ANONYMIZED"
    out = run(make(), source, clean_descriptors=True)
    assert out.StudyDescription == "CT chest for"
    assert out.SeriesDescription == "AXIAL 5mm"
    assert out.ProtocolName == "CHEST"


def test_in_memory_and_file_paths_agree() -> None:
    """The raw-bytes fast path writes exactly what the converted path writes."""
    kw = {"retain_long_modified_dates": True, "retain_safe_private": True}
    a = deep_ct()
    b = roundtrip(deep_ct())
    deidentify(a, recipe(**kw))
    deidentify(b, recipe(**kw))
    assert roundtrip(a) == roundtrip(b)


def test_deidentifier_reuse_is_consistent() -> None:
    engine = Deidentifier(recipe())
    first = engine(ct()).dataset
    second = engine(ct(SOPInstanceUID="1.2.3.4.100.2")).dataset
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_times_emptied_on_request(source: str) -> None:
    out = run(ct(), source, retain_long_modified_dates=True, keep_times=False)
    assert out.StudyDate == "20170420"
    assert out.StudyTime == ""


def test_tcia_knowledge_base_dispositions(source: str) -> None:
    from dicomhub.core.deid import _private_tags

    uid_row = next(r for r in _private_tags.ROWS if r.disposition == "hash_uid" and r.vr == "UI")
    date_row = next(r for r in _private_tags.ROWS if r.disposition == "shift_date" and r.vr == "DA")
    ds = ct()
    ds.private_block(uid_row.group, uid_row.creator, create=True).add_new(
        uid_row.element, "UI", "1.2.3.4.77"
    )
    ds.private_block(date_row.group, date_row.creator, create=True).add_new(
        date_row.element, "DA", "20200115"
    )
    kw = {"retain_safe_private": True, "retain_long_modified_dates": True}
    out = run(ds, source, safe_private_source="tcia_kb", **kw)
    got_uid = out.private_block(uid_row.group, uid_row.creator)[uid_row.element].value
    got_date = out.private_block(date_row.group, date_row.creator)[date_row.element].value
    assert got_uid == H("1.2.3.4.77")
    assert got_date == "20170420"


def test_unparsable_private_sequence_removed() -> None:
    """A safe private SQ that arrives as UN cannot be walked, so it is removed and reported."""
    ds = ct()
    ds.add_new(0x20010010, "LO", "Philips Imaging DD 001")
    ds.add_new(0x20011069, "UN", b"\xfe\xff\x00\xe0\x00\x00\x00\x00")  # Display Shutter Seq
    ds.add_new(0x20011001, "FL", 1.5)  # safe, kept
    result = Deidentifier(recipe(retain_safe_private=True))(ds)
    assert 0x20011069 not in ds
    assert ds[0x20011001].value == 1.5
    assert [(i.tag, i.reason) for i in result.issues] == [(0x20011069, "unparsed sequence removed")]
