"""PHI listed in the manifest is really in the files: top level, nested and private."""

from __future__ import annotations

import zlib
from pathlib import Path

from pydicom import Dataset

from dicomhub.sample import SampleManifest, make_sample

STANDARD_PHI_TAGS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientAddress", "OtherPatientIDsSequence", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "AccessionNumber",
    "StudyID", "StudyDescription", "SeriesDescription", "RequestAttributesSequence",
    "ReferencedPatientSequence",
)  # fmt: skip


def _readable(out: Path, path: str, syntax: str) -> bytes:
    """File bytes with a deflated body inflated, so strings can be searched."""
    raw = (out / path).read_bytes()
    if syntax != "1.2.840.10008.1.2.1.99":
        return raw
    group_length = int.from_bytes(raw[140:144], "little")
    body = raw[144 + group_length :]
    return raw[: 144 + group_length] + zlib.decompress(body, -zlib.MAX_WBITS)


def test_manifest_phi_is_in_the_bytes(sample: tuple[Path, SampleManifest]) -> None:
    out, manifest = sample
    for entry in manifest.files:
        raw = _readable(out, entry.path, entry.transfer_syntax)
        assert entry.phi, entry.path
        for hit in entry.phi:
            assert hit.value.encode("latin-1") in raw, (entry.path, hit)


def test_phi_at_every_depth(sample: tuple[Path, SampleManifest]) -> None:
    _, manifest = sample
    hits = [hit for entry in manifest.files for hit in entry.phi]
    assert {hit.location for hit in hits} == {"top", "nested", "private"}
    assert max(hit.path.count("[") for hit in hits) >= 3
    private = {hit.kind for hit in hits if hit.location == "private"}
    assert {"patient_name", "patient_id"} <= private


def test_every_planted_kind_occurs(sample: tuple[Path, SampleManifest]) -> None:
    _, manifest = sample
    for patient in manifest.patients:
        found = {
            hit.kind for entry in manifest.files if entry.patient == patient.key
            for hit in entry.phi
        }  # fmt: skip
        assert found == set(patient.phi), patient.key


def test_standard_phi_tags_present(datasets: dict[str, Dataset]) -> None:
    for ds in datasets.values():
        for keyword in STANDARD_PHI_TAGS:
            assert keyword in ds, keyword
        assert ds.RequestAttributesSequence[0].ReasonForTheRequestedProcedure
    images = [ds for ds in datasets.values() if ds.Modality in ("CT", "MR", "PT")]
    assert all(ds.PatientName.family_name in ds.ImageComments for ds in images)


def test_sr_content_tree_holds_names_and_dates(datasets: dict[str, Dataset]) -> None:
    for ds in (d for d in datasets.values() if d.Modality == "SR"):
        findings = next(i for i in ds.ContentSequence if i.ValueType == "CONTAINER")
        comment = findings.ContentSequence[0].ContentSequence[0]
        assert ds.PatientName.given_name in comment.TextValue
        observer = next(i for i in ds.ContentSequence if i.ValueType == "PNAME")
        assert observer.PersonName == ds.NameOfPhysiciansReadingStudy


def test_patients_are_distinct(sample: tuple[Path, SampleManifest]) -> None:
    _, manifest = sample
    first, second = manifest.patients
    assert first.patient_id != second.patient_id
    assert first.patient_name != second.patient_name


def test_same_seed_same_bytes_other_seed_differs(
    sample: tuple[Path, SampleManifest], tmp_path: Path
) -> None:
    out, manifest = sample
    again = make_sample(tmp_path / "again", patients=2, seed=0, small=True)
    assert again == manifest
    for entry in manifest.files:
        assert (tmp_path / "again" / entry.path).read_bytes() == (out / entry.path).read_bytes()
    other = make_sample(tmp_path / "other", patients=1, seed=1, small=True)
    assert {p.patient_id for p in other.patients}.isdisjoint(
        p.patient_id for p in manifest.patients
    )
    assert {f.sop_instance_uid for f in other.files}.isdisjoint(
        f.sop_instance_uid for f in manifest.files
    )
