"""Builders for the submitter tests: kits, ID maps and bad input files."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread

from dicomhub.sample import SampleManifest
from dicomhub.submit.kit import KitBody, build_kit, write_kit

SECRET = "submit test archive secret key"
ROOT = "1.2.826.0.1.3680043.10.999"


def kit_body(**overrides: Any) -> KitBody:
    fields: dict[str, Any] = {
        "collection": "LUNG1",
        "site": "S1",
        "intake_url": "https://127.0.0.1:9",
        "credential": "dh_test.token",
        "secret_key": SECRET,
        "uid_root": ROOT,
    }
    fields.update(overrides)
    return build_kit(**fields)


def write_test_kit(path: Path, **overrides: Any) -> Path:
    return write_kit(path, kit_body(**overrides), SECRET)


def write_idmap(
    path: Path, manifest: SampleManifest, *, collection: str = "LUNG1", site: str = "S1"
) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submitter_patient_id", "archive_patient_id", "archive_patient_name"])
        for n, patient in enumerate(manifest.patients, start=1):
            writer.writerow([patient.patient_id, f"{collection}-{site}-{n:04d}", ""])
    return path


def copy_sample(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def first_ct(folder: Path) -> Path:
    for path in sorted(folder.rglob("*.dcm")):
        ds = dcmread(path, stop_before_pixels=True)
        if ds.Modality == "CT" and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1":
            return path
    raise AssertionError("no explicit VR CT in the sample")


def plant_bad_inputs(folder: Path, template: Path) -> dict[str, Path]:
    """One file per bad input next to good ones; returns reason -> path."""
    bad = folder / "bad"
    bad.mkdir()
    data = template.read_bytes()
    paths = {
        "not_dicom": bad / "notes.txt",
        "truncated": bad / "truncated.dcm",
        "no_patient_id": bad / "no_pid.dcm",
        "unmapped_patient": bad / "stranger.dcm",
        "unknown_transfer_syntax": bad / "odd_syntax.dcm",
    }
    paths["not_dicom"].write_text("not an image\n")
    paths["truncated"].write_bytes(data[: len(data) * 2 // 3])
    ds = dcmread(template)
    del ds.PatientID
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".1"
    ds.save_as(paths["no_patient_id"], enforce_file_format=True)
    ds = dcmread(template)
    ds.PatientID = "NOT-IN-MAP-77"
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".2"
    ds.save_as(paths["unmapped_patient"], enforce_file_format=True)
    syntax = b"1.2.840.10008.1.2.1"
    assert syntax in data[:400]
    paths["unknown_transfer_syntax"].write_bytes(data.replace(syntax, b"1.2.999.99999.9.2.1", 1))
    return paths


def now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
