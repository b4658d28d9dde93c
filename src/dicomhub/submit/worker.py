"""What a worker process does with one source file: read, check, de-identify, write.

Workers read the source and write the de-identified file themselves; only paths and a
small outcome cross the process boundary, never a pickled dataset. Each worker builds
the de-identifier once (:func:`init_worker`) and reuses it for every file it gets.

Every refusal is a quarantine with a stable reason code; the detail is for the person at
the site and may name a path but never a header value.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import AllTransferSyntaxes

from dicomhub.core.deid import Deidentifier, DeidError, PatientMap, Recipe
from dicomhub.core.dicom.header import UnreadableError, check_complete
from dicomhub.submit.kit import BurnedInRules
from dicomhub.submit.pixels import burned_in_reason
from dicomhub.submit.state import Outcome

KNOWN_SYNTAXES = frozenset(str(uid) for uid in AllTransferSyntaxes)
PREAMBLE = 128


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, sent once per process."""

    recipe: Recipe
    patients: dict[str, tuple[str, str | None]]
    rules: BurnedInRules
    out_dir: str
    layout: str = "flat"  # "flat": <sop>.dcm; "tree": patient/study/series/<sop>.dcm
    collection: str = ""
    site: str = ""
    sponsor: str = ""


@dataclass(frozen=True)
class WorkResult:
    """One file's outcome and the old→new pairs it produced."""

    outcome: Outcome
    uid_pairs: tuple[tuple[str, str], ...] = ()
    patient_pair: tuple[str, str] | None = None
    error: str | None = None


class _Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        patients: PatientMap = config.patients
        self.engine = Deidentifier(config.recipe, patients=patients)


_STATE: dict[str, _Worker] = {}


def init_worker(config: WorkerConfig) -> None:
    """Process-pool initializer: compile the recipe once for this process."""
    _STATE["worker"] = _Worker(config)


def is_dicom(path: Path) -> bool:
    """True if the file has a Part 10 preamble and the ``DICM`` prefix."""
    try:
        with path.open("rb") as handle:
            head = handle.read(PREAMBLE + 4)
    except OSError:
        return False
    return len(head) == PREAMBLE + 4 and head[PREAMBLE:] == b"DICM"


def quarantine(file_id: int, reason: str, detail: str) -> WorkResult:
    return WorkResult(Outcome(file_id, "quarantined", reason, detail))


def process(file_id: int, source: str) -> WorkResult:
    """De-identify one file (in a worker process); never raises for bad input."""
    worker = _STATE["worker"]
    path = Path(source)
    if not is_dicom(path):
        return WorkResult(Outcome(file_id, "skipped", "not_dicom", "no DICOM preamble"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            check_complete(path)
            ds = dcmread(path)
        except UnreadableError as exc:
            reason = "truncated" if "truncat" in str(exc) or "ends" in str(exc) else "unreadable"
            return quarantine(file_id, reason, str(exc)[:300])
        except Exception as exc:
            return quarantine(file_id, "unreadable", f"{type(exc).__name__}: {exc}"[:300])
        return _deidentify(worker, file_id, ds)


def _deidentify(worker: _Worker, file_id: int, ds: Dataset) -> WorkResult:
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in KNOWN_SYNTAXES:
        return quarantine(file_id, "unknown_transfer_syntax", f"transfer syntax {syntax!r}")
    if not str(ds.get("PatientID", "") or "").strip():
        return quarantine(file_id, "no_patient_id", "the instance has no PatientID")
    # An image a Clean Pixel Data rule matches has its known regions blanked instead.
    cleaned = worker.engine.pixel_rule(ds) is not None
    risk = None if cleaned else burned_in_reason(ds, worker.config.rules)
    if risk is not None:
        return quarantine(file_id, "burned_in", risk)
    if not ds.get("SOPInstanceUID") or not ds.get("StudyInstanceUID"):
        return quarantine(file_id, "missing_uid", "no SOPInstanceUID or StudyInstanceUID")
    try:
        result = worker.engine(ds)
    except DeidError as exc:  # the engine's own reason code (unmapped_patient, missing_uid, ...)
        return quarantine(file_id, exc.code, exc.message[:300])
    except Exception as exc:
        return quarantine(file_id, "deid_failed", f"{type(exc).__name__}: {exc}"[:300])
    out = ds
    _name_place(out, worker.config)
    sop, study = str(out.SOPInstanceUID), str(out.StudyInstanceUID)
    series = str(out.get("SeriesInstanceUID", ""))
    patient = str(out.get("PatientID", ""))
    buffer = io.BytesIO()
    try:
        out.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        detail = f"cannot write: {type(exc).__name__}: {exc}"
        return quarantine(file_id, "deid_failed", detail[:300])
    data = buffer.getvalue()
    target = _target(worker.config, patient, study, series, sop)
    try:
        _write(target, data)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return WorkResult(Outcome(file_id, "seen"), error=f"disk full writing {target}")
        return WorkResult(Outcome(file_id, "seen"), error=f"cannot write {target}: {exc.strerror}")
    outcome = Outcome(
        file_id, "deidentified", "pixels_cleaned" if result.pixel_rule else None,
        result.pixel_rule, patient, study, series, sop, str(target),
        hashlib.sha256(data).hexdigest(), len(data),
    )  # fmt: skip
    return WorkResult(outcome, tuple(result.uid_map.items()), result.patient)


def _name_place(ds: Dataset, config: WorkerConfig) -> None:
    """Name the collection and site in the instance, where intake looks for them.

    They belong to the Clinical Trial Subject Module (PS3.3 C.7.1.3), which is present
    whole or not at all: Sponsor Name and Protocol ID (Type 1), Protocol Name, Site ID and
    Site Name (Type 2), and Subject ID (1C; there is no Reading ID), here the archive
    PatientID the ID map gave.
    """
    if not config.collection:
        return
    ds.ClinicalTrialSponsorName = config.sponsor or config.collection
    ds.ClinicalTrialProtocolID = config.collection
    ds.ClinicalTrialSiteID = config.site
    for keyword in ("ClinicalTrialProtocolName", "ClinicalTrialSiteName"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    if "ClinicalTrialSubjectID" not in ds and "ClinicalTrialSubjectReadingID" not in ds:
        ds.ClinicalTrialSubjectID = str(ds.get("PatientID", "") or "")


def _safe(part: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in part) or "_"


def _target(config: WorkerConfig, patient: str, study: str, series: str, sop: str) -> Path:
    base = Path(config.out_dir)
    if config.layout == "tree":
        return base / _safe(patient) / study / (series or "series") / f"{sop}.dcm"
    return base / sop[-2:] / f"{sop}.dcm"


def _write(target: Path, data: bytes) -> None:
    """Write atomically: a killed worker leaves a temp file, never a half output."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
