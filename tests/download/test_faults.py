"""A misbehaving server (500s, corrupt bytes, dropped connections) and a messy manifest."""

from __future__ import annotations

from pathlib import Path

from dicomhub.download.report import PROBLEMS_CSV
from tests.download.helpers import check_md5s, manifest_for, read_csv, run_cli, series_folders
from tests.download.site import Fault, Site
from tests.fixtures.public_data import BRAIN, LUNG


def test_transient_faults_are_retried(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG)
    corrupt, error, dropped = uids[0], uids[1], uids[2]
    site.recorder.faults = {
        corrupt: Fault("corrupt", 1),
        error: Fault("500", 2),
        dropped: Fault("drop", 1),
    }
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    result = run_cli(manifest, "--dest", dest, "-q", "--backoff", "0.01")
    assert result.exit_code == 0, result.output
    assert site.recorder.image_requests(corrupt) == 2
    assert site.recorder.image_requests(error) == 3
    assert site.recorder.image_requests(dropped) == 2
    assert site.recorder.image_requests(uids[3]) == 1
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    for folder in folders.values():
        check_md5s(folder)


def test_persistent_faults_are_reported_and_retried_next_run(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(BRAIN)
    corrupt, error = uids[0], uids[1]
    site.recorder.faults = {corrupt: Fault("corrupt", 100), error: Fault("500", 100)}
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    result = run_cli(manifest, "--dest", dest, "-q", "--backoff", "0.01", "--retries", "2")
    assert result.exit_code == 2, result.output
    assert site.recorder.image_requests(corrupt) == 3
    assert site.recorder.image_requests(error) == 3
    text = " ".join(result.output.split())
    assert f"failed {corrupt}" in text
    assert any(
        words in text
        for words in ("is not the published one", "the zip is damaged", "SHA-256 is not the")
    )
    assert f"failed {error}" in text
    assert "answered 500" in text
    problems = {row["Series UID"]: row for row in read_csv(dest / PROBLEMS_CSV)}
    assert set(problems) == {corrupt, error}
    assert any(word in problems[corrupt]["Detail"] for word in ("MD5", "damaged", "SHA-256"))
    folders = series_folders(dest)
    assert corrupt not in folders
    assert error not in folders
    assert len(folders) == len(uids) - 2
    assert not any(p.name.endswith(".part") for p in dest.rglob("*"))
    # The server heals: the next run fetches the two failed series and nothing else.
    site.recorder.faults = {}
    before = site.recorder.series_requested()
    again = run_cli(manifest, "--dest", dest, "-q", "--backoff", "0.01")
    assert again.exit_code == 0, again.output
    after = site.recorder.series_requested()
    assert {u for u in uids if after[u] != before[u]} == {corrupt, error}
    for folder in series_folders(dest).values():
        check_md5s(folder)


def test_unknown_duplicated_and_malformed_uids_are_reported(site: Site, tmp_path: Path) -> None:
    good = site.catalogue.all_series(BRAIN)[:2]
    unknown = "1.2.840.99999.1.2.3"
    manifest = manifest_for(site, good, tmp_path / "m.tcia")
    text = manifest.read_text()
    manifest.write_text(text + f"{good[0]}\n{unknown}\nnot-a-uid\n1.2.03\n{unknown}\n")
    dest = tmp_path / "out"
    result = run_cli(manifest, "--dest", dest, "-q")
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert "malformed lines │ 2" in flat
    assert "duplicated UIDs │ 2" in flat
    assert "unknown to the server │ 1" in flat
    assert f"unknown {unknown}" in flat
    rows = read_csv(dest / PROBLEMS_CSV)
    kinds = sorted((row["Problem"], row["Manifest Line"], row["Series UID"]) for row in rows)
    assert kinds == sorted(
        [
            ("duplicate", "9", good[0]),
            ("duplicate", "13", unknown),
            ("malformed", "11", "not-a-uid"),
            ("malformed", "12", "1.2.03"),
            ("unknown", "", unknown),
        ]
    )
    assert set(series_folders(dest)) == set(good)
    assert set(site.recorder.series_requested()) == set(good)
