"""Where a series goes in DEST.

* ``nbia`` (default): ``<Collection>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/``,
  NBIA Data Retriever's classic layout;
* ``flat``: ``<SeriesInstanceUID>/``, what tcia_utils' ``downloadSeries`` makes;
* ``uid``: ``<StudyInstanceUID>/<SeriesInstanceUID>/`` with each file named
  ``<SOPInstanceUID>.dcm`` (read from its header) instead of the server's name.

Names from the server are made safe: no separator, no ``..``, no leading dot.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9._ ^+-]+")


class Layout(enum.StrEnum):
    """Folder layouts of DEST."""

    NBIA = "nbia"
    FLAT = "flat"
    UID = "uid"


def safe_component(value: object, fallback: str = "unknown") -> str:
    """A path component that cannot climb out of its folder or hide."""
    text = "" if value is None else str(value)
    cleaned = _SAFE.sub("_", text).strip(" ._") or fallback
    return cleaned[:96]


def series_folder(layout: Layout, row: Mapping[str, Any]) -> PurePosixPath:
    """The folder of one series, relative to DEST."""
    uid = safe_component(row["uid"])
    if layout is Layout.FLAT:
        return PurePosixPath(uid)
    study = safe_component(row["study_uid"], "unknown-study")
    if layout is Layout.UID:
        return PurePosixPath(study, uid)
    return PurePosixPath(
        safe_component(row["collection"], "unknown-collection"),
        safe_component(row["patient_id"], "unknown-patient"),
        study,
        uid,
    )


__all__ = ["Layout", "safe_component", "series_folder"]
