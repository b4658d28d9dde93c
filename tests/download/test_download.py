"""Downloads from the real public app on loopback: layouts, reports, resume, sources, access."""

from __future__ import annotations

import shutil
from pathlib import Path

from dicomhub.download.report import METADATA_CSV, PROBLEMS_CSV
from tests.download.helpers import (
    check_md5s,
    manifest_for,
    read_csv,
    run_cli,
    series_folders,
)
from tests.download.site import Site
from tests.fixtures.public_data import BRAIN, BREAST, LUNG


def test_manifest_downloads_in_nbia_layout_with_report(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG, BRAIN)
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    result = run_cli(manifest, "--dest", dest, "-q", "--backoff", "0.01")
    assert result.exit_code == 0, result.output
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    files = sum(check_md5s(folder) for folder in folders.values())
    assert files == site.catalogue.instances[LUNG] + site.catalogue.instances[BRAIN]
    one = folders[uids[0]]
    assert one.relative_to(dest).parts[0] == LUNG
    assert one.relative_to(dest).parts[-1] == uids[0]
    rows = read_csv(dest / METADATA_CSV)
    assert {row["Series UID"] for row in rows} == set(uids)
    by_uid = {row["Series UID"]: row for row in rows}
    assert by_uid[uids[0]]["Collection"] == LUNG
    assert by_uid[uids[0]]["Number of Images"] == "3"
    assert by_uid[uids[0]]["File Location"] == str(one.relative_to(dest))
    assert len(by_uid[uids[0]]["Series Digest"]) == 64
    assert read_csv(dest / PROBLEMS_CSV) == []
    assert not list((dest / ".dicomhub-download" / "staging").iterdir())


def test_second_run_fetches_nothing(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(BRAIN)
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    assert run_cli(manifest, "--dest", dest, "-q").exit_code == 0
    first = site.recorder.series_requested()
    assert set(first) == set(uids)
    assert all(n == 1 for n in first.values())
    again = run_cli(manifest, "--dest", dest, "-q")
    assert again.exit_code == 0, again.output
    assert site.recorder.series_requested() == first
    assert "0 series" in again.output


def test_removed_series_folder_is_fetched_again(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(BRAIN)[:3]
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    assert run_cli(manifest, "--dest", dest, "-q", "--layout", "flat").exit_code == 0
    assert set(p.name for p in dest.iterdir() if not p.name.startswith(".")) >= set(uids)
    shutil.rmtree(dest / uids[1])
    assert run_cli(manifest, "--dest", dest, "-q", "--layout", "flat").exit_code == 0
    assert site.recorder.image_requests(uids[1]) == 2
    assert site.recorder.image_requests(uids[0]) == 1
    check_md5s(dest / uids[1])


def test_uid_layout_names_files_by_sop_uid(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG)[:2]
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    dest = tmp_path / "out"
    assert run_cli(manifest, "--dest", dest, "-q", "--layout", "uid").exit_code == 0
    folder = series_folders(dest)[uids[0]]
    assert len(folder.relative_to(dest).parts) == 2
    names = sorted(p.name for p in folder.glob("*.dcm"))
    assert len(names) == 3
    assert all(n.startswith("2.25.") for n in names)


def test_layout_cannot_change_under_a_download(site: Site, tmp_path: Path) -> None:
    manifest = manifest_for(site, site.catalogue.all_series(BRAIN)[:1], tmp_path / "m.tcia")
    dest = tmp_path / "out"
    assert run_cli(manifest, "--dest", dest, "-q").exit_code == 0
    result = run_cli(manifest, "--dest", dest, "-q", "--layout", "flat")
    assert result.exit_code == 1
    assert "'nbia' layout" in result.output


def test_dry_run_counts_and_sizes_without_fetching(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG)
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    result = run_cli(manifest, "--dest", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{len(uids)} (" in result.output
    size = site.catalogue.sizes[LUNG]
    assert f"{size / 1000:.1f} KB" in result.output
    assert site.recorder.series_requested() == {}


def test_collection_source(site: Site, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = run_cli(BRAIN, "--server", site.url, "--dest", dest, "-q")
    assert result.exit_code == 0, result.output
    assert set(series_folders(dest)) == set(site.catalogue.series[BRAIN])


def test_limited_collection_needs_a_credential(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.series[BREAST]
    manifest = tmp_path / "m.tcia"
    manifest.write_text(
        f"downloadServerUrl={site.url}/nbia-download/servlet/DownloadServlet\n"
        "includeAnnotation=false\nnoOfrRetry=4\ndatabasketId=x.tcia\nmanifestVersion=3.0\n"
        "ListOfSeriesToDownload=\n" + "".join(u + "\n" for u in uids)
    )
    dest = tmp_path / "out"
    guest = run_cli(manifest, "--dest", dest, "-q")
    assert guest.exit_code == 2
    assert guest.output.count("not visible to you") == len(uids)
    assert site.recorder.series_requested() == {}
    with_token = run_cli(manifest, "--dest", dest, "-q", "--token", site.alice_token)
    assert with_token.exit_code == 0, with_token.output
    assert set(series_folders(dest)) == set(uids)


def test_basket_source_with_token(site: Site, tmp_path: Path) -> None:
    import httpx

    uids = site.catalogue.series[BREAST][:1] + site.catalogue.series[LUNG][:2]
    auth = {"Authorization": f"Bearer {site.alice_token}"}
    added = httpx.post(f"{site.url}/api/basket/series", json={"uids": uids}, headers=auth)
    assert added.status_code == 200, added.text
    dest = tmp_path / "out"
    token = site.alice_token
    result = run_cli("basket", "--server", site.url, "--dest", dest, "-q", "--token", token)
    assert result.exit_code == 0, result.output
    assert set(series_folders(dest)) == set(uids)
