"""Interruptions lose nothing: a full disk under the state database, a SIGKILL mid-run."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomhub.sample import SampleManifest, make_sample
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.pipeline import Options, Pipeline, state_folder
from dicomhub.submit.state import StateError
from tests.submit.helpers import write_idmap


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs (root only); grown later with a remount."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_for_the_state_database_then_resume(
    small_disk: Path, tmp_path: Path, sample: tuple[Path, SampleManifest], kit_path: Path,
    idmap_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    options = Options(folders=[sample[0]], work=small_disk / "work", workers=2, dry_run=True,
                      out=out)  # fmt: skip
    kit, idmap = load_kit(kit_path), load_idmap(idmap_path)
    with pytest.raises(StateError, match=r"is full; free space and run the same command again"):
        Pipeline(kit, idmap, options).run()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    summary = Pipeline(kit, idmap, options).run()
    assert summary.complete
    outputs = list(out.rglob("*.dcm"))
    assert len(outputs) == summary.stages["deidentified"]
    assert len({dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in outputs}) == len(
        outputs
    )
    assert not list(out.rglob(".*.tmp"))


def stage_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return dict(conn.execute("SELECT stage, COUNT(*) FROM files GROUP BY stage"))
    except sqlite3.Error:
        return {}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dicomhub", "submit", "run", *args]


@pytest.mark.slow
def test_killed_dry_run_resumes_complete_without_duplicates(tmp_path: Path, kit_path: Path) -> None:
    manifest = make_sample(tmp_path / "src", patients=4, seed=11, small=True)
    idmap = write_idmap(tmp_path / "map.csv", manifest)
    out, work = tmp_path / "out", tmp_path / "work"
    args = cli(str(tmp_path / "src"), "--kit", str(kit_path), "--idmap", str(idmap), "--work",
               str(work), "--dry-run", "--out", str(out), "--workers", "2")  # fmt: skip
    db = state_folder(Options(folders=[], work=work, dry_run=True, out=out)) / "state.sqlite3"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while stage_counts(db).get("deidentified", 0) < 20:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = stage_counts(db)
    assert before.get("seen", 0) > 0, before
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dry run complete" in done.stdout
    after = stage_counts(db)
    assert "seen" not in after
    outputs = list(out.rglob("*.dcm"))
    assert len(outputs) == after["deidentified"]
    sop_uids = [dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in outputs]
    assert len(set(sop_uids)) == len(sop_uids)
    risky = sum(f.modality in ("US", "OT") for f in manifest.files)
    assert after["deidentified"] == len(manifest.files) - risky
    assert not list(out.rglob(".*.tmp"))


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_state_database_at_the_file_size_limit_then_resume(
    tmp_path: Path, sample: tuple[Path, SampleManifest], kit_path: Path, idmap_path: Path
) -> None:
    """No room for the state database, without root: a file size limit (ulimit -f).

    The de-identified files are far below the limit; the state database (and its WAL)
    reach it. The run stops with one clear line and the same command, with room again,
    finishes the job without a duplicate or a lost file.
    """
    out, work = tmp_path / "out", tmp_path / "work"
    args = cli(str(sample[0]), "--kit", str(kit_path), "--idmap", str(idmap_path), "--work",
               str(work), "--dry-run", "--out", str(out), "--workers", "1")  # fmt: skip
    full = subprocess.run(args, capture_output=True, text=True, check=False,
                          preexec_fn=_file_size_limit(112 * 1024))  # fmt: skip
    assert full.returncode == 1, full.stdout + full.stderr
    assert "reached the file size limit" in full.stderr
    assert "run the same command again" in full.stderr
    assert "Traceback" not in full.stderr
    db = state_folder(Options(folders=[], work=work, dry_run=True, out=out)) / "state.sqlite3"
    written_before = {p: p.read_bytes() for p in out.rglob("*.dcm")}
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    after = stage_counts(db)
    assert "seen" not in after
    outputs = list(out.rglob("*.dcm"))
    assert len(outputs) == after["deidentified"] > 0
    assert all(path.read_bytes() == data for path, data in written_before.items())
    sop_uids = [dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in outputs]
    assert len(set(sop_uids)) == len(sop_uids)
    assert not list(out.rglob(".*.tmp"))
