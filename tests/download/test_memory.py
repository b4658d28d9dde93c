"""10,000 series in one manifest: memory stays flat (peak RSS of a real process)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.download.helpers import cli_command, manifest_for, read_csv
from tests.download.site import Site, running_site

LOGGER = logging.getLogger(__name__)
SERIES = 10_000


@pytest.fixture
def big_site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    with running_site(tmp_path, sqlite_template, bulk=SERIES) as served:
        yield served


def peak_rss_mb(args: list[str]) -> float:
    """Run ``args`` to the end; its peak resident set size in MB.

    ``VmHWM`` (the high-water mark of the process's own memory since exec) is
    sampled from /proc; rusage would also count the pages the child shared
    with this test process between fork and exec.
    """
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status = Path(f"/proc/{proc.pid}/status")
    peak_kb = 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 0, err
    return peak_kb / 1024


@pytest.mark.slow
def test_ten_thousand_series_with_flat_memory(big_site: Site, tmp_path: Path) -> None:
    uids = big_site.bulk
    small = manifest_for(big_site, uids[:500], tmp_path / "small.tcia")
    large = manifest_for(big_site, uids, tmp_path / "large.tcia")
    options = ("-q", "-j", "8", "--layout", "flat")
    small_mb = peak_rss_mb(cli_command(small, "--dest", tmp_path / "small", *options))
    large_mb = peak_rss_mb(cli_command(large, "--dest", tmp_path / "large", *options))
    LOGGER.info("peak RSS: %.0f MB for 500 series, %.0f MB for %d", small_mb, large_mb, SERIES)
    assert large_mb < 250
    assert large_mb < small_mb + 30, (small_mb, large_mb)
    rows = read_csv(tmp_path / "large" / "metadata.csv")
    assert len(rows) == SERIES
    assert all(row["Number of Images"] == "1" for row in rows)
    requested = big_site.recorder.series_requested()
    assert len(requested) == SERIES
    assert set(requested.values()) == {1, 2} or set(requested.values()) == {1}
    assert sum(requested[u] for u in uids[500:]) == SERIES - 500
