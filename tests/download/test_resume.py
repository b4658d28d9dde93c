"""A real downloader process killed (SIGKILL) at random points, then run again to the end."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhub.download.bulkrun import BULK_BATCH
from dicomhub.download.state import STATE_DIR, STATE_FILE
from tests.download.helpers import (
    check_md5s,
    cli_command,
    manifest_for,
    run_process,
    series_folders,
)
from tests.download.site import Site, running_site

BULK = 600
WORKERS = 4


@pytest.fixture
def bulk_site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    with running_site(tmp_path, sqlite_template, bulk=BULK) as served:
        yield served


def finished_in_state(dest: Path) -> set[str]:
    """Series the state file says are verified or done."""
    path = dest / STATE_DIR / STATE_FILE
    if not path.exists():
        return set()
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT uid FROM series WHERE status IN ('verified', 'done')")
        return {row[0] for row in rows}
    except sqlite3.OperationalError:  # the run has not made its tables yet
        return set()
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(bulk_site: Site, tmp_path: Path) -> None:
    uids = bulk_site.bulk
    manifest = manifest_for(bulk_site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    args = (manifest, "--dest", dest, "-q", "-j", str(WORKERS), "--backoff", "0.01")
    rng = random.Random(7)
    kills = 0
    protected: list[tuple[set[str], Counter[str]]] = []
    for _ in range(4):
        proc = subprocess.Popen(cli_command(*args), stdout=subprocess.DEVNULL)
        # kill at a random point of progress (a fast run outpaces any fixed delay)
        target = len(finished_in_state(dest)) + rng.randint(10, 120)
        while proc.poll() is None and len(finished_in_state(dest)) < target:
            time.sleep(0.005)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        finished = finished_in_state(dest)
        placed = series_folders(dest)
        # Only verified series have final folders, and every file in them is whole.
        assert set(placed) <= finished
        for folder in placed.values():
            check_md5s(folder)
        protected.append((finished, bulk_site.recorder.series_requested()))
    assert kills >= 2, "the runs ended before they could be killed; make BULK larger"
    final = run_process(*args)
    assert final.returncode == 0, final.stdout + final.stderr
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    assert sum(check_md5s(folder) for folder in folders.values()) == len(uids)
    requested = bulk_site.recorder.series_requested()
    for finished, counts_then in protected:
        # A series verified before a kill is never asked for again.
        assert all(requested[uid] == counts_then[uid] for uid in finished)
    # Only series in flight at a kill are fetched again: on the bulk path at most
    # one batch per worker (a batch is at most 1/(2 x workers) of the series left).
    in_flight = WORKERS * min(BULK_BATCH, -(-BULK // (2 * WORKERS)))
    again = sum(n - 1 for n in requested.values())
    assert again <= kills * in_flight
    assert not any(p.name.endswith(".part") for p in dest.rglob("*"))
    assert not list((dest / STATE_DIR / "staging").iterdir())


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_then_resumes(bulk_site: Site, tmp_path: Path) -> None:
    uids = bulk_site.bulk
    manifest = manifest_for(bulk_site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    args = (manifest, "--dest", dest, "-q", "-j", str(WORKERS))
    with subprocess.Popen(cli_command(*args), stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while len(finished_in_state(dest)) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in " ".join(err.split())
    finished = finished_in_state(dest)
    assert 50 <= len(finished) < len(uids)
    placed = series_folders(dest)
    assert set(placed) == finished
    before = bulk_site.recorder.series_requested()
    final = run_process(*args)
    assert final.returncode == 0, final.stdout + final.stderr
    after = bulk_site.recorder.series_requested()
    assert all(after[uid] == before[uid] for uid in finished)
    assert set(series_folders(dest)) == set(uids)
