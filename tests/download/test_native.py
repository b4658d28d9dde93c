"""dicomhub's bulk path: chosen by probing, same folders as NBIA's path, same access rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

from dicomhub.download.client import Server
from tests.download.helpers import check_md5s, manifest_for, run_cli, series_folders
from tests.download.site import ALICE_PASSWORD, IMAGE_PATHS, Site
from tests.fixtures.public_data import BRAIN, BREAST, LUNG


def _paths(site: Site) -> set[str]:
    return {path for (path, _uid), n in site.recorder.requests.items() if n}


def _tree(dest: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file a download placed (state and reports aside)."""
    return {
        str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in dest.rglob("*")
        if p.is_file() and ".dicomhub-download" not in p.parts and p.parent != dest
    }


def test_probe_chooses_the_bulk_path_on_dicomhub(site: Site) -> None:
    server = Server(site.url)
    try:
        assert server.probe() == "guest"
        assert server.bulk
        assert server.bulk_max_series >= 100
    finally:
        server.close()
    legacy = Server(site.url)
    legacy.allow_bulk = False
    try:
        legacy.probe()
        assert not legacy.bulk
    finally:
        legacy.close()


def test_bulk_and_nbia_paths_give_the_same_folders(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.all_series(LUNG, BRAIN)
    manifest = manifest_for(site, uids, tmp_path / "m.tcia")
    bulk, nbia = tmp_path / "bulk", tmp_path / "nbia"
    result = run_cli(manifest, "--dest", bulk, "-q", "-j", "2")
    assert result.exit_code == 0, result.output
    assert "stream" in _paths(site)
    assert not _paths(site) & {"getImageWithMD5Hash", "getImage"}
    assert all(n == 1 for n in site.recorder.series_requested().values())
    legacy = run_cli(manifest, "--dest", nbia, "-q", "--nbia-only")
    assert legacy.exit_code == 0, legacy.output
    assert "getImageWithMD5Hash" in _paths(site)
    assert _tree(bulk) == _tree(nbia)
    folders = series_folders(bulk)
    assert set(folders) == set(uids)
    assert sum(check_md5s(f) for f in folders.values()) == sum(
        site.catalogue.instances[name] for name in (LUNG, BRAIN)
    )


def test_limited_series_by_bulk_with_either_token(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.series[BREAST]
    manifest = manifest_for(site, site.catalogue.series[LUNG][:1], tmp_path / "m.tcia")
    header = "".join(manifest.read_text().splitlines(keepends=True)[:6])
    manifest.write_text(header + "".join(u + "\n" for u in uids))
    guest = run_cli(manifest, "--dest", tmp_path / "guest", "-q")
    assert guest.exit_code == 2
    assert guest.output.count("not visible to you") == len(uids)
    answer = httpx.post(
        f"{site.url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": ALICE_PASSWORD},
    )
    assert answer.status_code == 200, answer.text
    oauth = str(answer.json()["access_token"])
    for name, token in (("api", site.alice_token), ("oauth", oauth)):
        dest = tmp_path / name
        result = run_cli(manifest, "--dest", dest, "-q", "--token", token)
        assert result.exit_code == 0, result.output
        assert set(series_folders(dest)) == set(uids)
    assert not _paths(site) & set(IMAGE_PATHS[:2])
    assert all(n == 2 for n in site.recorder.series_requested().values())
