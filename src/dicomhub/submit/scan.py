"""Folder reading: every regular file under the given paths, recursively, in a stable order.

Nothing is opened here; whether a file is DICOM is the worker's question (it has to read
the file anyway). Hidden files and folders (``.DS_Store``, ``.git``) and the submitter's
own work folder are not walked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from dicomhub.errors import BadRequest


def walk(paths: Iterable[Path], *, exclude: Iterable[Path] = ()) -> Iterator[tuple[str, int]]:
    """Yield (absolute path, size) for each regular file under ``paths``."""
    skip = {Path(p).resolve() for p in exclude}
    for given in paths:
        root = Path(given).resolve()
        if not root.exists():
            raise BadRequest(f"{given} does not exist")
        if root.is_file():
            yield str(root), root.stat().st_size
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d not in skip)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = here / name
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if path.is_file():
                    yield str(path), stat.st_size
