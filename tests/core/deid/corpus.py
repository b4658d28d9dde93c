"""Running the engine over real files and judging each outcome.

An outcome is either a de-identified instance that writes, reads back and leaks nothing
(``leaks.py``), or a :class:`DeidError` with a code the submitter knows. Anything else
(an unhandled exception, a file that cannot be written, a leak) is a failure, reported
with the file's name and never its values.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset

from dicomhub.core.deid import Deidentifier, DeidError

from .helpers import recipe
from .leaks import leaks, secrets_of, structure_problems

#: Reason codes a submitter turns into a local quarantine.
KNOWN_CODES = frozenset(
    {"missing_uid", "unmapped_patient", "undecodable_attribute", "pixel_clean_failed"}
)
#: The recipe a default kit carries (``kits create`` sets Modified Dates).
KIT: dict[str, Any] = {"retain_long_modified_dates": True}
OPTIONS = (
    "retain_long_full_dates",
    "retain_patient_characteristics",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_safe_private",
    "retain_uids",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)


def with_option(option: str) -> dict[str, Any]:
    """The kit's recipe with one more option switched on."""
    if option == "retain_long_full_dates":
        return {"retain_long_full_dates": True}
    return {**KIT, option: True}


def corpus_files() -> list[tuple[str, bytes]]:
    """pydicom's test files (and pydicom-data's, when installed), read once."""
    files = []
    for name in sorted(get_testdata_files()):
        path = Path(name)
        if path.is_file() and path.suffix not in (".json", ".txt", ".py", ".gz", ".bz2"):
            files.append((f"{path.parent.name}/{path.name}", path.read_bytes()))
    return files


def distinct_headers(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """One file per distinct header (the corpus has one image in many transfer syntaxes)."""
    seen: dict[tuple[object, ...], tuple[str, bytes]] = {}
    key: tuple[object, ...]
    for name, data in files:
        try:
            ds = read(data)
            key = (tuple(ds.keys()), str(ds.get("PatientName", "")), str(ds.get(0x00080018, "")))
        except Exception:
            key = (name,)
        seen.setdefault(key, (name, data))
    return list(seen.values())


def read(data: bytes) -> Dataset:
    """Read like a lenient reader would (the submitter refuses files without preamble)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(io.BytesIO(data), force=True)


@dataclass
class Sweep:
    """Counts and failures of one recipe over a set of files."""

    done: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0
    failures: list[str] = field(default_factory=list)


def sweep(files: list[tuple[str, bytes]], fields: dict[str, Any]) -> Sweep:
    """De-identify every file under ``fields`` and judge the outcome."""
    patients: dict[str, tuple[str, str | None]] = {}
    mapped = Deidentifier(recipe(**fields), patients=patients)
    unmapped = Deidentifier(recipe(**fields))
    out = Sweep()
    for name, data in files:
        try:
            original, ds = read(data), read(data)
        except Exception:
            out.unreadable += 1
            continue
        patient_id = _patient_id(original)
        engine = unmapped
        if patient_id:
            patients[patient_id] = ("ARCHIVE-0001", None)
            engine = mapped
        out.failures.extend(judge(name, original, ds, engine, out))
    return out


def judge(name: str, original: Dataset, ds: Dataset, engine: Deidentifier, out: Sweep) -> list[str]:
    """Failures of one file under one engine (counting refusals on ``out``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the original's invalid values, decoded to judge
        secrets = secrets_of(original, engine)
    try:
        result = engine(ds)
    except DeidError as exc:
        if exc.code not in KNOWN_CODES:
            return [f"{name}: unknown refusal code {exc.code}"]
        out.refused[exc.code] = out.refused.get(exc.code, 0) + 1
        said = leaks(_note(exc.message), secrets, engine)
        return [f"{name}: refusal message leaks {s}" for s in said]
    except Exception as exc:
        return [f"{name}: unhandled {type(exc).__name__}"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid values the recipe keeps as they were
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            output = dcmread(io.BytesIO(buf.getvalue()))
            found = leaks(output, secrets, engine) + structure_problems(output, engine)
    except Exception as exc:
        return [f"{name}: output cannot be written or read: {type(exc).__name__}: {exc}"]
    issues = "\n".join(issue.reason for issue in result.issues)
    found += [f"issue text {s}" for s in leaks(_note(issues), secrets, engine)]
    out.done += 1
    return [f"{name}: {problem}" for problem in found]


def _note(text: str) -> Dataset:
    """A text wrapped in a dataset, so the leak scan can read it."""
    ds = Dataset()
    ds.add_new(0x00204000, "LT", text)
    return ds


def _patient_id(ds: Dataset) -> str:
    try:
        return str(ds.get("PatientID", "") or "").strip()
    except Exception:
        return ""
