"""The site's ID map: submitter PatientID -> archive PatientID (and optional name).

The submitter IDs are PHI: the file stays at the site, and error messages name line
numbers, never the IDs themselves. A map that is ambiguous is refused as a whole: a
duplicate submitter ID, or two patients merged into one archive ID, would silently
mislabel images, which no later step could undo.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from dicomhub.errors import BadRequest
from dicomhub.submit.kit import Kit

LOGGER = logging.getLogger(__name__)
MAX_LO = 64


class IdMapError(BadRequest):
    """The ID map cannot be used as it is."""

    code = "bad_idmap"


@dataclass
class IdMap:
    """A checked ID map, in the engine's PatientMap shape, plus what was skipped."""

    patients: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    skipped_lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patients)


def _cell(row: list[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def load_idmap(path: Path) -> IdMap:
    """Read and check an ID map CSV (header row first; columns as in the kit template).

    Wholly blank lines and unused template rows (an archive ID with no submitter ID) are
    skipped and counted; every other defect stops the run with the offending line numbers.
    """
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise IdMapError(f"cannot read the ID map {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise IdMapError(f"the ID map {path} is not a UTF-8 CSV file: {exc}") from exc
    if not rows:
        raise IdMapError(f"the ID map {path} is empty (expected a header row)")
    header = [c.strip().lower() for c in rows[0]]
    if "submitter_patient_id" not in header or "archive_patient_id" not in header:
        raise IdMapError(
            f"the ID map {path} needs a header row with submitter_patient_id and "
            "archive_patient_id (and optionally archive_patient_name)"
        )
    col_old, col_new = header.index("submitter_patient_id"), header.index("archive_patient_id")
    col_name = header.index("archive_patient_name") if "archive_patient_name" in header else -1
    result = IdMap()
    first_line: dict[str, int] = {}
    owner: dict[str, int] = {}
    problems: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        old, new = _cell(row, col_old), _cell(row, col_new)
        name = _cell(row, col_name) if col_name >= 0 else ""
        if not old:
            result.skipped_lines.append(number)
            continue
        if not new:
            problems.append(f"line {number}: blank archive_patient_id")
            continue
        if len(new) > MAX_LO or "\\" in new or len(name) > MAX_LO or "\\" in name:
            problems.append(f"line {number}: archive ID or name longer than 64 or with '\\'")
            continue
        if old in first_line:
            problems.append(f"line {number}: submitter ID repeats line {first_line[old]}")
            continue
        if new in owner:
            problems.append(f"line {number}: archive ID {new!r} already used on line {owner[new]}")
            continue
        first_line[old], owner[new] = number, number
        result.patients[old] = (new, name or None)
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        shown = "; ".join(problems[:10]) + more
        raise IdMapError(f"the ID map {path} has {len(problems)} bad row(s): {shown}")
    if not result.patients:
        raise IdMapError(f"the ID map {path} maps no patient")
    if result.skipped_lines:
        LOGGER.warning("ID map: skipped %d blank or unused line(s)", len(result.skipped_lines))
    return result


def write_template(path: Path, kit: Kit, rows: int) -> Path:
    """An ID map for the site to fill: header and ``rows`` suggested archive IDs."""
    with Path(path).open("x", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(kit.body.idmap.columns)
        for n in range(1, rows + 1):
            writer.writerow(["", kit.suggested_archive_id(n), ""])
    return path
