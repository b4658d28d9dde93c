"""Bad input stops with one clear line: bad files, the wrong server, DEST unusable, disk full."""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.download.helpers import (
    check_md5s,
    cli_command,
    manifest_for,
    run_cli,
    run_process,
    series_folders,
)
from tests.download.site import Site, running_site
from tests.fixtures.public_data import BRAIN, LUNG


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs root); the test is skipped where mounting is refused."""
    path.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("downloadServerUrl=http://127.0.0.1:1/nbia-download/servlet/Down", "truncated"),
        ("%PDF-1.7\nsomething else\n", "is not a .tcia manifest"),
    ],
)
def test_bad_manifest_files(tmp_path: Path, content: str, message: str) -> None:
    manifest = tmp_path / "m.tcia"
    manifest.write_text(content)
    result = run_cli(manifest, "--dest", tmp_path / "out")
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()


def test_manifest_listing_no_series(site: Site, tmp_path: Path) -> None:
    manifest = manifest_for(site, site.catalogue.all_series(BRAIN)[:1], tmp_path / "m.tcia")
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:6]))
    result = run_cli(manifest, "--dest", tmp_path / "out")
    assert result.exit_code == 1
    assert "lists no series" in result.output


def test_manifest_for_another_server(site: Site, tmp_path: Path) -> None:
    manifest = manifest_for(site, site.catalogue.all_series(BRAIN)[:1], tmp_path / "m.tcia")
    other = "http://127.0.0.1:9"
    result = run_cli(manifest, "--server", other, "--dest", tmp_path / "out")
    assert result.exit_code == 1
    assert f"was made by {site.url}, not by {other}" in " ".join(result.output.split())
    text = manifest.read_text().replace(site.url, other)
    manifest.write_text(text)
    unreachable = run_cli(manifest, "--dest", tmp_path / "out", "--backoff", "0.01")
    assert unreachable.exit_code == 1
    assert f"cannot reach {other}" in " ".join(unreachable.output.split())


def test_dest_that_is_a_file(site: Site, tmp_path: Path) -> None:
    manifest = manifest_for(site, site.catalogue.all_series(BRAIN)[:1], tmp_path / "m.tcia")
    dest = tmp_path / "a-file"
    dest.write_text("x")
    result = run_cli(manifest, "--dest", dest)
    assert result.exit_code == 1
    assert "exists and is not a folder" in result.output
    below = run_cli(manifest, "--dest", dest / "sub")
    assert below.exit_code == 1
    assert "cannot be created" in below.output


def test_dest_on_a_read_only_file_system(site: Site, tmp_path: Path) -> None:
    manifest = manifest_for(site, site.catalogue.all_series(BRAIN)[:1], tmp_path / "m.tcia")
    with tmpfs(tmp_path / "ro", "size=1m,ro") as dest:
        result = run_cli(manifest, "--dest", dest)
        assert result.exit_code == 1
        assert "is not writable: Read-only file system" in " ".join(result.output.split())


@pytest.fixture
def bulk_site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    with running_site(tmp_path, sqlite_template, bulk=400) as served:
        yield served


def test_disk_fills_up_mid_run_then_resumes(bulk_site: Site, tmp_path: Path) -> None:
    uids = bulk_site.bulk
    manifest = manifest_for(bulk_site, uids, tmp_path / "m.tcia")
    with tmpfs(tmp_path / "small", "size=1m") as dest:
        full = run_process(manifest, "--dest", dest, "-q", "--backoff", "0.01")
        assert full.returncode == 1, full.stdout + full.stderr
        assert "no space left" in full.stderr.lower()
        assert "run the same command again" in " ".join(full.stderr.split())
        first = bulk_site.recorder.series_requested()
        placed = series_folders(dest)
        assert 0 < len(placed) < len(uids)
        for folder in placed.values():
            check_md5s(folder)
        remount(dest, "size=64m")
        done = run_process(manifest, "--dest", dest, "-q", "--backoff", "0.01")
        assert done.returncode == 0, done.stdout + done.stderr
        folders = series_folders(dest)
        assert set(folders) == set(uids)
        for folder in folders.values():
            check_md5s(folder)
        after = bulk_site.recorder.series_requested()
        assert all(after[uid] == first[uid] for uid in placed)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_file_size_limit_stops_cleanly_then_resumes(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG, BRAIN)
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    args = cli_command(manifest, "--dest", dest, "-q", "--backoff", "0.01")
    limited = subprocess.run(
        args, capture_output=True, text=True, preexec_fn=_limit_file_size, check=False
    )
    assert limited.returncode == 1, limited.stdout + limited.stderr
    message = " ".join(limited.stderr.split())
    assert "file-size limit" in message or "File too large" in message
    assert "run the same command again" in message
    done = run_process(manifest, "--dest", dest, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(series_folders(dest)) == set(uids)
