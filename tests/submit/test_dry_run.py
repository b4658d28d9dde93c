"""The pipeline with --dry-run: de-identify into a folder, quarantine with reasons, keep maps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomhub.sample import SampleManifest
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.pipeline import Options, Pipeline, state_folder
from dicomhub.submit.report import Summary
from dicomhub.submit.state import StateDB
from tests.submit.helpers import copy_sample, first_ct, plant_bad_inputs

Run = tuple[Summary, Options, dict[str, Path], SampleManifest]


def dry_run(
    kit: Path, idmap: Path, folder: Path, work: Path, out: Path, workers: int = 2
) -> tuple[Summary, Options]:
    options = Options(folders=[folder], work=work, workers=workers, dry_run=True, out=out)
    return Pipeline(load_kit(kit), load_idmap(idmap), options).run(), options


def out_of(options: Options) -> Path:
    """The dry run's output folder (always set for a dry run)."""
    assert options.out is not None
    return options.out


def phi_hits(folder: Path, phi: set[str]) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits.extend((str(path), v) for v in phi if v.encode("utf-8") in data)
    return hits


@pytest.fixture
def run_with_bad_inputs(
    tmp_path: Path, sample: tuple[Path, SampleManifest], kit_path: Path, idmap_path: Path
) -> Run:
    src = copy_sample(sample[0], tmp_path / "src")
    bad = plant_bad_inputs(src, first_ct(src))
    summary, options = dry_run(kit_path, idmap_path, src, tmp_path / "work", tmp_path / "out")
    return summary, options, bad, sample[1]


def test_dry_run_quarantines_each_bad_input_with_its_reason(run_with_bad_inputs: Run) -> None:
    summary, options, bad, manifest = run_with_bad_inputs
    assert summary.complete
    state = StateDB(state_folder(options) / "state.sqlite3")
    listed = {p: reason for p, reason, _ in state.listing("quarantined")}
    skipped = {Path(p).name for p, _, _ in state.listing("skipped")}
    state.close()
    assert skipped == {"notes.txt", "manifest.json"}
    for reason, path in bad.items():
        if reason != "not_dicom":
            assert listed[str(path.resolve())] == reason
    burned = [name for name, reason in listed.items() if reason == "burned_in"]
    risky = [f for f in manifest.files if f.modality in ("US", "OT")]
    assert len(burned) == len(risky)
    sendable = len(manifest.files) - len(risky)
    assert summary.stages["deidentified"] == sendable
    assert len(list(out_of(options).rglob("*.dcm"))) == sendable
    assert summary.quarantined == {
        "burned_in": len(risky), "truncated": 1, "no_patient_id": 1, "unmapped_patient": 1,
        "unknown_transfer_syntax": 1,
    }  # fmt: skip


def test_dry_run_output_has_no_planted_phi_and_maps_stay_local(run_with_bad_inputs: Run) -> None:
    _, options, _, manifest = run_with_bad_inputs
    assert phi_hits(out_of(options), manifest.phi_values()) == []
    folder = state_folder(options)
    with (folder / "mapping" / "patient_map.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["submitter_patient_id", "archive_patient_id"]
    assert {r[0] for r in rows[1:]} == {p.patient_id for p in manifest.patients}
    uid_rows = (folder / "mapping" / "uid_map.csv").read_text()
    assert all(f.sop_instance_uid in uid_rows for f in manifest.files if f.modality == "CT")
    assert (folder / "mapping" / "uid_map.csv").stat().st_mode & 0o777 == 0o600
    out = next(out_of(options).rglob("*.dcm"))
    ds = dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.ClinicalTrialProtocolID == "LUNG1"
    assert ds.ClinicalTrialSiteID == "S1"
    assert ds.PatientID.startswith("LUNG1-S1-")
    # the Clinical Trial Subject Module whole: Type 1 filled, Type 2 present, Subject ID
    assert ds.ClinicalTrialSponsorName == "LUNG1"
    assert ds.ClinicalTrialProtocolName == ""
    assert ds.ClinicalTrialSiteName == ""
    assert ds.ClinicalTrialSubjectID == ds.PatientID


def test_second_dry_run_does_nothing_again(
    run_with_bad_inputs: Run, kit_path: Path, idmap_path: Path
) -> None:
    summary, options, _, _ = run_with_bad_inputs
    again, _ = dry_run(kit_path, idmap_path, options.folders[0], options.work, out_of(options))
    assert again.deidentified_this_run == 0
    assert again.stages == summary.stages


def test_a_new_file_is_picked_up_on_the_next_run(
    tmp_path: Path, sample: tuple[Path, SampleManifest], kit_path: Path, idmap_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    first = first_ct(sample[0])
    (src / "a.dcm").write_bytes(first.read_bytes())
    summary, _ = dry_run(kit_path, idmap_path, src, tmp_path / "w", tmp_path / "o", 1)
    assert summary.stages == {"deidentified": 1}
    (src / "copy-of-a.dcm").write_bytes(first.read_bytes())
    other = next(p for p in sorted(sample[0].rglob("*.dcm")) if p != first)
    (src / "b.dcm").write_bytes(other.read_bytes())
    again, _ = dry_run(kit_path, idmap_path, src, tmp_path / "w", tmp_path / "o", 1)
    assert again.deidentified_this_run == 1
    assert again.stages["duplicate"] == 1
