"""``make_sample``: plan, build, encode and write a whole synthetic collection.

Output is a pure function of (patients, seed, small): UIDs, names, dates and pixels all
come from seeded generators, so two runs with one seed give byte-identical files.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom import Dataset

from dicomhub.errors import BadRequest
from dicomhub.sample import derived, images
from dicomhub.sample.codecs import encode
from dicomhub.sample.manifest import FileEntry, PatientEntry, SampleManifest, find_phi
from dicomhub.sample.modules import Context
from dicomhub.sample.phi import make_patient
from dicomhub.sample.plan import PatientPlan, SeriesPlan, StudyPlan, plan_patient
from dicomhub.sample.uids import UidFactory

LOGGER = logging.getLogger(__name__)

Builder = Callable[[Context, dict[int, list[Dataset]]], list[Dataset]]
Progress = Callable[[int, int], None]

BUILDERS: dict[str, Builder] = {
    "ct": images.build_ct,
    "ct_scout": images.build_ct_scout,
    "mr": images.build_mr,
    "pt": images.build_pt,
    "us": images.build_us,
    "sc": images.build_sc,
    "seg": derived.build_seg,
    "sr": derived.build_sr,
    "sr_text": derived.build_sr_text,
}


def plan_sample(patients: int, seed: int = 0, small: bool = True) -> list[PatientPlan]:
    """Decide every patient, study and series (and instance counts) without rendering."""
    if patients < 1:
        raise BadRequest(f"--patients must be at least 1, got {patients}")
    uids = UidFactory(seed)
    plans = []
    for index in range(patients):
        rng = random.Random(f"{seed}:patient:{index}")
        patient = make_patient(rng, index)
        plans.append(plan_patient(seed, patient, uids, rng, small))
    return plans


def check_out(out: Path) -> None:
    """Refuse a regular file or a non-empty directory, so nothing is ever overwritten."""
    if out.exists() and not out.is_dir():
        raise BadRequest(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise BadRequest(f"{out} is not empty; choose a new or empty directory")


def make_sample(
    out: Path,
    patients: int,
    seed: int = 0,
    small: bool = True,
    progress: Progress | None = None,
) -> SampleManifest:
    """Write a synthetic collection under ``out`` and return its manifest.

    Parameters
    ----------
    out:
        New or empty directory; files go to ``out/<patient>/<study>/<series>/<n>.dcm``
        and the manifest to ``out/manifest.json``.
    patients:
        Number of fake patients (at least 1); each gets CT, MR, PET-CT and US studies.
    seed:
        Everything (names, UIDs, pixels) derives from it; same seed, same bytes.
    small:
        64x64-class images for tests; ``False`` gives clinical sizes (512x512 CT).
    progress:
        Called with (files written, total files) after each file.
    """
    out = Path(out)
    plans = plan_sample(patients, seed, small)
    check_out(out)
    total = sum(s.count for p in plans for st in p.studies for s in st.series)
    manifest = SampleManifest(seed=seed, small=small)
    uids = UidFactory(seed)
    for plan in plans:
        patient = plan.patient
        phi = patient.phi()
        for study in plan.studies:
            phi.update({f"{k}_{study.key}": v for k, v in study.phi().items()})
        manifest.patients.append(
            PatientEntry(patient.key, patient.mrn, patient.name.dicom, dict(sorted(phi.items())))
        )
        for study in plan.studies:
            built: dict[int, list[Dataset]] = {}
            for series in study.series:
                ctx = Context(patient, study, series, uids, _pixel_rng(seed, plan, study, series))
                built[series.number] = BUILDERS[series.kind](ctx, built)
                for ds in built[series.number]:
                    entry = _write(out, plan, study, series, ds, phi)
                    manifest.files.append(entry)
                    if progress is not None:
                        progress(len(manifest.files), total)
    manifest.write(out / "manifest.json")
    LOGGER.info("wrote %d files for %d patients to %s", len(manifest.files), patients, out)
    return manifest


def _pixel_rng(
    seed: int, plan: PatientPlan, study: StudyPlan, series: SeriesPlan
) -> np.random.Generator:
    return np.random.default_rng([seed, plan.patient.index, study.index, series.number])


def _write(
    out: Path,
    plan: PatientPlan,
    study: StudyPlan,
    series: SeriesPlan,
    ds: Dataset,
    phi: dict[str, str],
) -> FileEntry:
    hits = find_phi(ds, phi)
    encode(ds, series.transfer_syntax)
    rel = Path(plan.patient.key, study.key, series.key, f"{int(ds.InstanceNumber):04d}.dcm")
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    syntax = ds.file_meta.TransferSyntaxUID
    return FileEntry(
        path=rel.as_posix(),
        patient=plan.patient.key,
        patient_id=plan.patient.mrn,
        study=study.key,
        study_instance_uid=str(study.uid),
        series=series.key,
        series_instance_uid=str(series.uid),
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        modality=str(ds.Modality),
        transfer_syntax=str(syntax),
        transfer_syntax_name=syntax.name,
        phi=hits,
    )
