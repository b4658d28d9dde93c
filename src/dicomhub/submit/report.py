"""The run summary and the files a site keeps: report, old→new mapping files.

The mapping files hold PHI (the site's own PatientIDs and original UIDs); they are
written next to the state database, never into the output folder and never sent,
so the site can answer questions about its own data later (MIDI-B asks the same).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dicomhub.submit.state import StateDB


@dataclass
class Summary:
    """What one run achieved, and where the whole submission stands."""

    kit_id: str
    collection: str
    site: str
    dry_run: bool
    stages: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    #: Images sent with known burned-in regions blanked, by Clean Pixel Data rule.
    pixels_cleaned: dict[str, int] = field(default_factory=dict)
    not_dicom: list[str] = field(default_factory=list)
    deidentified_this_run: int = 0
    sent_this_run: int = 0
    resent: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    deid_seconds: float = 0.0
    error: str | None = None
    unverified: str | None = None

    @property
    def complete(self) -> bool:
        """Everything sendable has been verified (or, dry run, de-identified)."""
        open_stages = ("seen",) if self.dry_run else ("seen", "deidentified", "sent")
        return self.error is None and not any(self.stages.get(s) for s in open_stages)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["complete"] = self.complete
        return data


def fill(summary: Summary, state: StateDB) -> Summary:
    """Counts from the state database."""
    summary.stages = state.counts()
    summary.quarantined = state.reasons("quarantined")
    summary.rejected = state.reasons("rejected")
    summary.pixels_cleaned = state.pixels_cleaned()
    summary.not_dicom = [path for path, _, _ in state.listing("skipped")]
    return summary


def _private_writer(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def write_mappings(state: StateDB, folder: Path) -> tuple[Path, Path]:
    """``patient_map.csv`` and ``uid_map.csv`` (old,new), readable by the owner only."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table, header in (
        ("patient_map", ("submitter_patient_id", "archive_patient_id")),
        ("uid_map", ("original_uid", "archive_uid")),
    ):
        path = folder / f"{table}.csv"
        with _private_writer(path) as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(state.mapping(table))
        written.append(path)
    return written[0], written[1]


def write_report(summary: Summary, state: StateDB, path: Path) -> Path:
    """The JSON report, with every quarantined file and its reason (paths are the site's)."""
    data = summary.to_dict()
    data["quarantine"] = [
        {"path": p, "reason": r, "detail": d} for p, r, d in state.listing("quarantined")
    ]
    data["rejected_files"] = [{"path": p, "reason": r} for p, r, _ in state.listing("rejected")]
    with _private_writer(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path
