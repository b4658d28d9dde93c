"""The sample is valid DICOM: readable, decodable, consistently identified and linked."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from dicomhub.sample import SampleManifest

ALL_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90",
}
SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
    "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
}
SR_CLASSES = {"1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.88.11"}


def walk(ds: Dataset) -> Iterator[Dataset]:
    """``ds`` and every sequence item below it."""
    yield ds
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item)


def test_layout_matches_manifest(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.dcm")}
    assert on_disk == {entry.path for entry in manifest.files}
    pattern = re.compile(r"patient-\d{3}/study-\d{2}/series-\d{2}/\d{4}\.dcm")
    assert all(pattern.fullmatch(path) for path in on_disk)
    assert SampleManifest.read(out / "manifest.json") == manifest


def test_every_modality_and_syntax_present(sample: tuple[Path, SampleManifest]) -> None:
    _, manifest = sample
    assert {e.modality for e in manifest.files} == {"CT", "MR", "PT", "US", "OT", "SEG", "SR"}
    assert {e.transfer_syntax for e in manifest.files} == ALL_SYNTAXES
    assert {e.sop_class_uid for e in manifest.files if e.modality == "SR"} == SR_CLASSES
    for entry in manifest.files:
        if entry.modality in SOP_CLASSES:
            assert entry.sop_class_uid == SOP_CLASSES[entry.modality]


def test_every_file_reads_and_decodes(
    sample: tuple[Path, SampleManifest], datasets: dict[str, Dataset]
) -> None:
    _, manifest = sample
    for entry in manifest.files:
        ds = datasets[entry.path]
        assert ds.file_meta.TransferSyntaxUID == entry.transfer_syntax
        assert ds.SOPInstanceUID == entry.sop_instance_uid
        if entry.modality == "SR":
            assert "PixelData" not in ds
            continue
        arr = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1))
        expected = (ds.Rows, ds.Columns) if frames == 1 else (frames, ds.Rows, ds.Columns)
        assert arr.shape[: len(expected)] == expected
        assert np.ptp(arr) > 0, entry.path


def test_file_meta(sample: tuple[Path, SampleManifest], datasets: dict[str, Dataset]) -> None:
    out, manifest = sample
    for entry in manifest.files:
        raw = (out / entry.path).read_bytes()
        assert raw[128:132] == b"DICM"
        meta = datasets[entry.path].file_meta
        assert meta.MediaStorageSOPClassUID == entry.sop_class_uid
        assert meta.MediaStorageSOPInstanceUID == entry.sop_instance_uid
        assert meta.ImplementationClassUID.is_valid
        assert meta.ImplementationVersionName


def test_compressed_series_really_compressed(
    sample: tuple[Path, SampleManifest], datasets: dict[str, Dataset]
) -> None:
    _, manifest = sample
    markers = {
        "1.2.840.10008.1.2.4.80": b"\xff\xd8\xff\xf7",  # SOI then SOF55 (JPEG-LS)
        "1.2.840.10008.1.2.4.90": b"\xff\x4f\xff\x51",  # J2K SOC then SIZ
    }
    for entry in manifest.files:
        ds = datasets[entry.path]
        syntax = UID(entry.transfer_syntax)
        if not syntax.is_compressed:
            continue
        assert ds["PixelData"].is_undefined_length
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        if syntax in markers:
            assert frame.startswith(markers[syntax])
        else:
            segments = int.from_bytes(frame[:4], "little")
            assert segments == ds.SamplesPerPixel * ds.BitsAllocated // 8


def test_deflated_file_is_deflated(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    deflated = [e for e in manifest.files if e.transfer_syntax == "1.2.840.10008.1.2.1.99"]
    assert deflated
    for entry in deflated:
        raw = (out / entry.path).read_bytes()
        assert entry.patient_id.encode() not in raw


def test_uids_valid_unique_and_consistent(datasets: dict[str, Dataset]) -> None:
    sops = [ds.SOPInstanceUID for ds in datasets.values()]
    assert len(set(sops)) == len(sops)
    series: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for ds in datasets.values():
        for item in walk(ds):
            for elem in item:
                if elem.VR == "UI" and elem.value:
                    assert UID(elem.value).is_valid, elem
        key = (ds.StudyInstanceUID, ds.get("FrameOfReferenceUID", ""), ds.Modality)
        series[ds.SeriesInstanceUID].add(key)
    assert all(len(keys) == 1 for keys in series.values())
    studies = {ds.StudyInstanceUID for ds in datasets.values()}
    assert not studies & set(series)
    assert not studies & set(sops)


def test_references_resolve(datasets: dict[str, Dataset]) -> None:
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets.values()}
    seen = 0
    for ds in datasets.values():
        for item in walk(ds):
            if "ReferencedSOPInstanceUID" not in item or item is ds:
                continue
            if item.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.1.1":
                continue  # Referenced Patient: a patient record, not an image
            target = by_uid[item.ReferencedSOPInstanceUID]
            assert target.SOPClassUID == item.ReferencedSOPClassUID
            assert target.StudyInstanceUID == ds.StudyInstanceUID
            seen += 1
    assert seen > 20


def test_seg_and_sr_reference_ct(datasets: dict[str, Dataset]) -> None:
    series_modality = {ds.SeriesInstanceUID: ds.Modality for ds in datasets.values()}
    segs = [ds for ds in datasets.values() if ds.Modality == "SEG"]
    srs = [ds for ds in datasets.values() if ds.Modality == "SR"]
    assert len(segs) == 2
    assert len(srs) == 4
    for seg in segs:
        ref = seg.ReferencedSeriesSequence[0]
        assert series_modality[ref.SeriesInstanceUID] == "CT"
        assert len(ref.ReferencedInstanceSequence) == seg.NumberOfFrames
        frame = seg.PerFrameFunctionalGroupsSequence[0]
        assert frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert seg.pixel_array.max() == 1
    for sr in srs:
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
        assert evidence.StudyInstanceUID == sr.StudyInstanceUID
        kinds = {series_modality[s.SeriesInstanceUID] for s in evidence.ReferencedSeriesSequence}
        assert kinds in ({"CT", "SEG"}, {"MR"})
    ct = [ds for ds in datasets.values() if "AXIAL" in ds.get("ImageType", [])]
    assert all("ReferencedImageSequence" in ds for ds in ct if ds.Manufacturer.startswith("GE"))


def test_geometry_and_times(datasets: dict[str, Dataset]) -> None:
    series: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets.values():
        series[ds.SeriesInstanceUID].append(ds)
    for members in series.values():
        members.sort(key=lambda d: int(d.InstanceNumber))
        assert [int(d.InstanceNumber) for d in members] == list(range(1, len(members) + 1))
        for ds in members:
            assert ds.StudyDate == ds.SeriesDate == ds.ContentDate
            assert ds.SeriesTime >= ds.StudyTime
            assert ds.ContentTime >= ds.StudyTime
        if len(members) < 2:
            continue
        z = [float(d.ImagePositionPatient[2]) for d in members]
        steps = set(np.round(np.diff(z), 3))
        assert steps == {-float(members[0].SliceThickness)}
        assert {tuple(d.ImageOrientationPatient) for d in members} == {(1, 0, 0, 0, 1, 0)}
        assert all(len(d.PixelSpacing) == 2 for d in members)
        if members[0].Modality in ("CT", "PT"):
            assert all("RescaleSlope" in d and "RescaleIntercept" in d for d in members)


def test_equipment_consistent_per_scanner(datasets: dict[str, Dataset]) -> None:
    scanners: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for ds in datasets.values():
        fields = ("Manufacturer", "ManufacturerModelName", "SoftwareVersions", "StationName")
        scanners[ds.DeviceSerialNumber].add(tuple(str(ds.get(f)) for f in fields))
    assert len(scanners) >= 5
    assert all(len(values) == 1 for values in scanners.values())


def test_us_has_burned_in_text(datasets: dict[str, Dataset]) -> None:
    us = [ds for ds in datasets.values() if ds.Modality == "US"]
    assert len(us) == 2
    for ds in us:
        assert ds.BurnedInAnnotation == "YES"
        assert ds.PhotometricInterpretation == "RGB"
        band = ds.pixel_array[: ds.Rows // 4]
        assert (band == 255).any()
        assert (band < 255).any()


def test_private_blocks_from_two_vendors(datasets: dict[str, Dataset]) -> None:
    creators: dict[str, set[str]] = defaultdict(set)
    for ds in datasets.values():
        for elem in ds:
            if elem.tag.is_private_creator:
                creators[ds.Manufacturer].add(elem.value)
    assert {"GEMS_IDEN_01", "GEMS_ACQU_01", "GEMS_PARM_01"} <= creators["GE MEDICAL SYSTEMS"]
    assert {"SIEMENS CT VA0  COAD", "SIEMENS MR HEADER", "SIEMENS CSA HEADER"} <= creators[
        "SIEMENS"
    ]
    ge = next(ds for ds in datasets.values() if ds.Manufacturer.startswith("GE"))
    assert ge.private_block(0x0019, "GEMS_ACQU_01")[0x23].value == "39.375"
