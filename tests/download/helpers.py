"""Running the downloader in tests: in process (CliRunner) or as a real process."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from dicomhub.cli.download import app
from tests.download.site import Site


def manifest_for(site: Site, uids: list[str], path: Path) -> Path:
    """The server's own .tcia manifest for ``uids``, saved at ``path``."""
    answer = httpx.post(f"{site.url}/api/manifest", json={"uids": uids}, timeout=60)
    assert answer.status_code == 200, answer.text
    path.write_text(answer.text)
    return path


def run_cli(*args: str | Path) -> Result:
    """``dicomhub download ARGS`` in this process (the server runs in a thread)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def cli_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dicomhub.cli.download", *(str(a) for a in args)]


def run_process(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def series_folders(dest: Path) -> dict[str, Path]:
    """Series UID → folder, for every folder holding an md5hashes.csv."""
    return {
        p.parent.name: p.parent for p in dest.rglob("md5hashes.csv") if ".dicomhub" not in str(p)
    }


def check_md5s(folder: Path) -> int:
    """Check every file of a series folder against its md5hashes.csv; the number checked."""
    with (folder / "md5hashes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        data = (folder / row["Filename"]).read_bytes()
        assert hashlib.md5(data, usedforsecurity=False).hexdigest() == row["MD5Hash"]
    return len(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
