"""Built npm packages for browser tests, fetched once at test-setup time and cached.

A viewer's build is tens of megabytes, so it is never committed: the tests name
a package by version and by the registry's SHA-512 integrity string, fetch the
tarball from the npm registry on first use, check it, and unpack it under
``.cache/npm/`` in the working tree (a folder that ignores itself in git).
Later runs, and the other xdist workers, reuse the unpacked copy.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REGISTRY = "https://registry.npmjs.org"
CACHE = Path(__file__).resolve().parents[3] / ".cache" / "npm"


class FetchFailed(RuntimeError):
    """The registry could not be reached, or answered with other bytes than pinned."""


@dataclass(frozen=True)
class Pinned:
    """One package version and the integrity string the registry publishes for it."""

    name: str
    version: str
    integrity: str

    @property
    def tarball_url(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"

    @property
    def slug(self) -> str:
        return f"{self.name.replace('/', '+').lstrip('@')}-{self.version}"


def check_integrity(data: bytes, integrity: str) -> None:
    """Raise unless ``data`` hashes to the registry's ``sha512-<base64>`` string."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise FetchFailed(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise FetchFailed(f"integrity mismatch: got sha512-{actual}, pinned {integrity}")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download(package: Pinned, target: Path) -> None:
    try:
        with httpx.stream("GET", package.tarball_url, timeout=120, follow_redirects=True) as r:
            r.raise_for_status()
            data = b"".join(r.iter_bytes())
    except httpx.HTTPError as exc:
        raise FetchFailed(f"cannot fetch {package.tarball_url}: {exc}") from exc
    check_integrity(data, package.integrity)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)


def unpacked(package: Pinned, subfolder: str = "dist") -> Path:
    """The package's ``subfolder`` unpacked from its checked tarball (fetched if not cached)."""
    with _locked(CACHE):
        root = CACHE / package.slug
        done = root / ".complete"
        if done.exists():
            return root / "package" / subfolder
        tarball = CACHE / f"{package.slug}.tgz"
        if tarball.exists():
            check_integrity(tarball.read_bytes(), package.integrity)
        else:
            _download(package, tarball)
        shutil.rmtree(root, ignore_errors=True)
        prefix = f"package/{subfolder}/"
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            archive.extractall(root, members=members, filter="data")
        done.write_text(package.integrity + "\n")
        return root / "package" / subfolder
