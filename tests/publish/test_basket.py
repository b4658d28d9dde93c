"""The data basket over HTTP: adds, counts, persistence, exports, and a 20,000-series basket."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import statistics
import time
import zipfile
from contextlib import closing
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import select

from dicomhub.core.db import Instance, session_scope
from tests.fixtures.public_data import BRAIN, LUNG, add_bulk_series
from tests.publish.conftest import PublicSite

LOGGER = logging.getLogger(__name__)
HEADER = [
    "downloadServerUrl=http://127.0.0.1:8080/nbia-download/servlet/DownloadServlet",
    "includeAnnotation=false",
    "noOfrRetry=4",
]


def manifest_to_list(text: str, folder: Path) -> list[str]:
    """Read a manifest back with tcia_utils, unchanged, as a researcher would."""
    from tcia_utils import nbia

    path = folder / "basket.tcia"
    path.write_text(text)
    uids: list[str] = nbia.manifestToList(str(path))
    return uids


def test_guest_basket_adds_counts_and_removes(public_site: PublicSite) -> None:
    cat = public_site.catalogue
    with public_site.client() as guest:
        assert guest.get("/api/basket").json()["series"] == 0
        one = guest.post("/api/basket/series", json={"uids": cat.series[LUNG][:2]}).json()
        assert one["added"] == 2
        again = guest.post("/api/basket/series", json={"uids": cat.series[LUNG][:2]}).json()
        assert again["added"] == 0
        study = guest.post("/api/basket/studies", json={"uids": [cat.studies[BRAIN][0]]})
        assert study.json()["added"] == 3
        patient = guest.post(
            "/api/basket/patients", json={"collection": LUNG, "patient_ids": ["LUNG-004"]}
        )
        assert patient.json()["added"] == 4
        summary = guest.get("/api/basket").json()
        assert summary == {
            "series": 9,
            "studies": 4,
            "patients": 3,
            "collections": 2,
            "instances": 2 * 3 + 3 * 2 + 4 * 3,
            "size": summary["size"],
            "hidden": 0,
            "id": summary["id"],
            "shared_name": None,
        }
        assert isinstance(summary["id"], int)
        items = guest.get("/api/basket/items", params={"limit": 100}).json()["results"]
        assert summary["size"] == sum(r["size"] for r in items) > 0
        removed = guest.post("/api/basket/remove", json={"uids": cat.series[LUNG][:1]}).json()
        assert removed["removed"] == 1
        assert removed["basket"]["series"] == 8
        assert guest.delete("/api/basket").status_code == 200
        assert guest.get("/api/basket").json()["series"] == 0
    with public_site.client() as other_browser:
        assert other_browser.get("/api/basket").json()["series"] == 0


def test_bad_basket_requests(public_site: PublicSite) -> None:
    cat = public_site.catalogue
    with public_site.client() as guest:
        mixed = guest.post("/api/basket/series", json={"uids": [cat.series[LUNG][0], "1.2.3.999"]})
        assert mixed.status_code == 404
        assert mixed.json()["detail"]["missing"] == ["1.2.3.999"]
        assert guest.get("/api/basket").json()["series"] == 0  # all or nothing
        assert guest.post("/api/basket/series", json={"uids": ["../../etc"]}).status_code == 400
        assert guest.post("/api/basket/series", json={"uids": []}).status_code == 400
        assert guest.post("/api/basket/series", content=b"not json").status_code == 400
        too_many = {"uids": [f"1.2.{n}" for n in range(10_001)]}
        assert guest.post("/api/basket/series", json=too_many).status_code == 400
        bad_patient = {"collection": LUNG, "patient_ids": ["' OR 1=1 --"]}
        assert guest.post("/api/basket/patients", json=bad_patient).status_code == 404
        unknown = {"collection": "NOPE", "patient_ids": ["LUNG-001"]}
        assert guest.post("/api/basket/patients", json=unknown).status_code == 404
        for path in ("/api/basket/manifest.tcia", "/api/basket/series.csv"):
            assert guest.get(path).status_code == 404  # empty basket: nothing to export


def test_user_basket_persists_and_takes_over_the_guest_basket(public_site: PublicSite) -> None:
    cat = public_site.catalogue
    browser = public_site.client()
    with closing(browser):
        browser.post("/api/basket/series", json={"uids": cat.series[BRAIN][:2]})
        login = browser.post(
            "/api/login", json={"username": "bob", "password": "bob-password-1234"}
        )
        assert login.status_code == 200
        assert browser.get("/api/basket").json()["series"] == 2
        browser.post("/api/basket/series", json={"uids": cat.series[LUNG][:1]})
        browser.post("/api/logout")
        assert browser.get("/api/basket").json()["series"] == 0
    with closing(public_site.login("bob")) as elsewhere:
        summary = elsewhere.get("/api/basket").json()
        assert summary["series"] == 3


def test_manifest_csv_and_zip_of_a_basket(public_site: PublicSite, tmp_path: Path) -> None:
    cat = public_site.catalogue
    chosen = cat.series[BRAIN][:3] + cat.series[LUNG][:2]
    with public_site.client() as guest:
        guest.post("/api/basket/series", json={"uids": chosen})
        manifest = guest.get("/api/basket/manifest.tcia")
        assert manifest.status_code == 200
        assert manifest.headers["content-type"].startswith("application/x-nbia-manifest-file")
        assert manifest.headers["content-disposition"].endswith('.tcia"')
        lines = manifest.text.split("\n")
        assert lines[:3] == HEADER
        assert lines[3].startswith("databasketId=manifest-")
        assert lines[3].endswith(".tcia")
        assert lines[4:6] == ["manifestVersion=3.0", "ListOfSeriesToDownload="]
        assert lines[-1] == ""  # every line ends in \n, no blank line anywhere else
        assert "" not in lines[:-1]
        assert sorted(manifest_to_list(manifest.text, tmp_path)) == sorted(chosen)

        table = list(csv.DictReader(io.StringIO(guest.get("/api/basket/series.csv").text)))
        assert [row["SeriesInstanceUID"] for row in table] == manifest_to_list(
            manifest.text, tmp_path
        )
        assert {row["Collection"] for row in table} == {BRAIN, LUNG}
        assert table[0]["LicenseName"].startswith("Creative Commons")

        answer = guest.get("/api/basket/download.zip")
        assert answer.status_code == 200
        assert answer.headers["content-length"] == str(len(answer.content))
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
    names = archive.namelist()
    assert f"{BRAIN}/LICENSE.txt" in names
    assert f"{LUNG}/LICENSE.txt" in names
    dicoms = [n for n in names if n.endswith(".dcm")]
    assert len(dicoms) == 3 * 2 + 2 * 3
    with session_scope(public_site.context.db.sessions) as session:
        hashes = set(session.scalars(select(Instance.sha256)))
    for name in dicoms:
        data = archive.read(name)
        assert hashlib.sha256(data).hexdigest() in hashes
        ds = pydicom.dcmread(io.BytesIO(data))
        assert name.split("/")[3] == ds.SeriesInstanceUID
        assert ds.SeriesInstanceUID in chosen


def test_zip_with_a_missing_blob_fails_instead_of_coming_up_short(
    public_site: PublicSite,
) -> None:
    uid = public_site.catalogue.series[LUNG][0]
    with session_scope(public_site.context.db.sessions) as session:
        keys = list(session.scalars(select(Instance.blob_key).order_by(Instance.id).limit(2)))
    public_site.context.store.delete(keys[1])
    with public_site.client() as guest:
        guest.post("/api/basket/series", json={"uids": [uid]})
        with guest.stream("GET", "/api/basket/download.zip") as answer:
            assert answer.status_code == 200  # the first bytes went out before the gap
            with pytest.raises(httpx.HTTPError):
                answer.read()


def test_manifest_for_listed_series_is_all_or_nothing(
    public_site: PublicSite, tmp_path: Path
) -> None:
    lung = public_site.catalogue.series[LUNG]
    with public_site.client() as guest:
        ok = guest.post("/api/manifest", json={"uids": lung[:3]})
        assert ok.status_code == 200
        assert manifest_to_list(ok.text, tmp_path) == lung[:3]
        bad = guest.post("/api/manifest", json={"uids": [*lung[:3], "1.2.3.4.5"]})
        assert bad.status_code == 404
        assert guest.post("/api/manifest", json={"uids": ["1.2.x"]}).status_code == 400
        search = guest.get("/api/search/manifest.tcia", params={"modality": "MR"})
        assert len(manifest_to_list(search.text, tmp_path)) == 6


@pytest.mark.slow
def test_a_20000_series_basket_from_a_search(public_site: PublicSite, tmp_path: Path) -> None:
    started = time.perf_counter()
    uids = add_bulk_series(public_site.db_url, "BULK-CT", 20_000)
    LOGGER.info("wrote 20,000 series in %.1fs", time.perf_counter() - started)
    with public_site.client() as guest:
        timings = []
        for offset in range(0, 2000, 100):
            began = time.perf_counter()
            body = guest.get(
                "/api/search",
                params={"collection": "BULK-CT", "limit": 100, "offset": offset, "facets": "1"},
            )
            timings.append(time.perf_counter() - began)
            assert body.status_code == 200
        assert body.json()["total"] == 20_000
        # Latency is logged, not asserted: shared machines make timings noisy, and
        # the benchmark (1,000,000 instances) is where the goal is held.
        median, p95 = statistics.median(timings), sorted(timings)[int(0.95 * len(timings)) - 1]
        LOGGER.warning(
            "faceted search on 20,000 series: median %.0f ms, p95 %.0f ms",
            1000 * median,
            1000 * p95,
        )

        began = time.perf_counter()
        added = guest.post("/api/basket/search", params={"collection": "BULK-CT"})
        add_time = time.perf_counter() - began
        assert added.status_code == 200, added.text
        assert added.json()["added"] == 20_000
        assert added.json()["basket"]["series"] == 20_000
        guest.post("/api/basket/series", json={"uids": public_site.catalogue.series[LUNG][:1]})
        began = time.perf_counter()
        manifest = guest.get("/api/basket/manifest.tcia")
        manifest_time = time.perf_counter() - began
        assert manifest.status_code == 200
        listed = manifest_to_list(manifest.text, tmp_path)
        assert len(listed) == 20_001
        assert set(listed) == {*uids, public_site.catalogue.series[LUNG][0]}
        again = guest.post("/api/basket/search", params={"collection": "BULK-CT"})
        assert again.json()["added"] == 0
        LOGGER.warning(
            "add 20,000 by search %.0f ms; manifest of 20,001 %.0f ms",
            1000 * add_time,
            1000 * manifest_time,
        )
