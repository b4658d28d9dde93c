"""What was fetched, as CSV files in DEST, rewritten at the end of every run.

``metadata.csv`` has one row per series fetched and verified, with the columns
of NBIA Data Retriever's ``metadata.csv`` (what tcia_utils' ``downloadSeries``
reports too) plus a series digest (SHA-256 over the sorted ``name md5`` lines,
to compare two copies of a series without reading them).  ``problems.csv`` lists every
series that is not there and why (failed, unknown, denied), and every manifest
line that was malformed or duplicated.  Both are written under a temporary
name and renamed, and both are streamed from the state file.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from dicomhub.download.state import DENIED, DONE, FAILED, PENDING, UNKNOWN, State

METADATA_CSV = "metadata.csv"
PROBLEMS_CSV = "problems.csv"

#: (CSV header, state column).
METADATA_COLUMNS = (
    ("Series UID", "uid"),
    ("Collection", "collection"),
    ("Data Description URI", "doi"),
    ("Subject ID", "patient_id"),
    ("Study UID", "study_uid"),
    ("Study Description", "study_description"),
    ("Study Date", "study_date"),
    ("Series Description", "series_description"),
    ("Series Number", "series_number"),
    ("Manufacturer", "manufacturer"),
    ("Modality", "modality"),
    ("SOP Class UID", "sop_class_uid"),
    ("License Name", "license_name"),
    ("License URL", "license_url"),
    ("Number of Images", "files"),
    ("File Size", "bytes"),
    ("File Location", "path"),
    ("Download Timestamp", "fetched_at"),
    ("Series Digest", "sha256"),
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_reports(state: State, dest: Path) -> tuple[Path, Path]:
    """Write ``metadata.csv`` and ``problems.csv`` into ``dest``; their paths."""
    try:
        return _write_reports(state, dest)
    finally:
        for name in (METADATA_CSV, PROBLEMS_CSV):
            (dest / (name + ".part")).unlink(missing_ok=True)


def _write_reports(state: State, dest: Path) -> tuple[Path, Path]:
    metadata = dest / METADATA_CSV
    tmp = metadata.with_name(metadata.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([header for header, _ in METADATA_COLUMNS])
        for row in state.rows((DONE,)):
            writer.writerow([_cell(row[column]) for _, column in METADATA_COLUMNS])
    os.replace(tmp, metadata)
    problems = dest / PROBLEMS_CSV
    tmp = problems.with_name(problems.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Problem", "Manifest Line", "Series UID", "Detail"])
        for row in state.problems():
            detail = "not a SeriesInstanceUID" if row["kind"] == "malformed" else "listed again"
            writer.writerow([row["kind"], row["line"], _cell(row["value"]), detail])
        for row in state.rows((FAILED, UNKNOWN, DENIED, PENDING)):
            writer.writerow([row["status"], "", row["uid"], _cell(row["error"] or "")])
    os.replace(tmp, problems)
    return metadata, problems


def failures(state: State, limit: int) -> list[tuple[str, str, str]]:
    """Up to ``limit`` (status, uid, reason) of the series that did not arrive."""
    out: list[tuple[str, str, str]] = []
    for row in state.rows((FAILED, UNKNOWN, DENIED)):
        out.append((str(row["status"]), str(row["uid"]), str(row["error"] or "")))
        if len(out) >= limit:
            break
    return out


__all__ = ["METADATA_CSV", "PROBLEMS_CSV", "failures", "write_reports"]
