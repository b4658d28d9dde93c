"""tcia_utils (from PyPI, unchanged) against the running public app.

tcia_utils hard-codes TCIA's host inside ``tcia_utils.nbia.setApiUrl``; every
HTTP call site looks that name up when it runs, so replacing it (as a
notebook user would) points the whole module at dicomhub.  Nothing else of
the client is touched: its own requests, parsing and ZIP handling run.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest
import tcia_utils.nbia as nbia

from tests.fixtures.public_data import BRAIN, BREAST, LUNG
from tests.publish.conftest import PublicSite

# tcia_utils itself calls DataFrame.rename(inplace=True), which pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


@pytest.fixture(autouse=True)
def pointed(api_site: PublicSite, monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"{api_site.url}/nbia-api/services"

    def set_api_url(endpoint: str, api_url: str = "nbia") -> str:
        return f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"

    monkeypatch.setattr(nbia, "setApiUrl", set_api_url)


def test_collections_and_value_lists() -> None:
    assert nbia.getCollections() == [{"Collection": BRAIN}, {"Collection": LUNG}]
    assert nbia.getModality(collection=LUNG) == [{"Modality": "CT"}]
    assert nbia.getModality() == [{"Modality": "CT"}, {"Modality": "MR"}, {"Modality": "SEG"}]
    assert nbia.getBodyPart(collection=BRAIN, modality="MR") == [{"BodyPartExamined": "BRAIN"}]
    assert nbia.getManufacturer(collection=LUNG.lower()) == [
        {"Manufacturer": "GE MEDICAL SYSTEMS"},
        {"Manufacturer": "SIEMENS"},
    ]
    assert nbia.getModality(collection="NO-SUCH-COLLECTION") is None  # empty body


def test_counts() -> None:
    assert nbia.getCollectionPatientCounts() == [
        {"Collection": BRAIN, "Count": 3, "Authorized": 1},
        {"Collection": LUNG, "Count": 4, "Authorized": 1},
    ]
    assert nbia.getModalityCounts(collection=BRAIN) == [
        {"Modality": "MR", "Count": 3, "Authorized": 1},
        {"Modality": "SEG", "Count": 3, "Authorized": 1},
    ]
    assert nbia.getBodyPartCounts(modality="CT") == [
        {"BodyPart": "CHEST", "Count": 4, "Authorized": 1}
    ]
    counts = nbia.getManufacturerCounts(collection=LUNG, format="df")
    assert list(counts["Manufacturer"]) == ["GE MEDICAL SYSTEMS", "SIEMENS"]


def test_get_series_with_every_filter(api_site: PublicSite) -> None:
    every = nbia.getSeries()
    assert len(every) == len(api_site.catalogue.all_series(LUNG, BRAIN))
    lung = nbia.getSeries(collection=LUNG)
    assert {row["SeriesInstanceUID"] for row in lung} == set(api_site.catalogue.series[LUNG])
    first = lung[0]
    assert first["Collection"] == LUNG
    assert first["Authorized"] == 1
    assert first["StudyDate"].count("-") == 2
    assert len(first["StudyDate"]) == 10
    assert "AnnotationsFlag" not in first  # null keys are left out
    narrowed = nbia.getSeries(
        collection=LUNG,
        patientId=first["PatientID"],
        studyUid=first["StudyInstanceUID"],
        seriesUid=first["SeriesInstanceUID"],
        modality="ct",
        bodyPart="chest",
        manufacturer=first["Manufacturer"].lower(),
        manufacturerModel=first["ManufacturerModelName"],
    )
    assert [row["SeriesInstanceUID"] for row in narrowed] == [first["SeriesInstanceUID"]]
    df = nbia.getSeries(collection=BRAIN, modality="SEG", format="df")
    assert len(df) == 3
    assert set(df["Modality"]) == {"SEG"}
    assert nbia.getSeries(collection=LUNG, modality="MR") is None


def test_patients_and_studies(api_site: PublicSite) -> None:
    patients = nbia.getPatient(collection=LUNG)
    assert [p["PatientId"] for p in patients] == api_site.catalogue.patients[LUNG]
    pid = patients[0]["PatientId"]
    studies = nbia.getStudy(LUNG, patientId=pid)
    assert len(studies) == 2
    assert all(s["SeriesCount"] == 2 for s in studies)
    one = nbia.getStudy(LUNG, studyUid=studies[0]["StudyInstanceUID"])
    assert [s["StudyInstanceUID"] for s in one] == [studies[0]["StudyInstanceUID"]]
    by_modality = nbia.getPatientByCollectionAndModality(BRAIN, "SEG")
    assert [p["PatientId"] for p in by_modality] == api_site.catalogue.patients[BRAIN]
    assert len(nbia.getNewPatientsInCollection(LUNG, "2000/01/01")) == 4
    assert nbia.getNewPatientsInCollection(LUNG, "2999/01/01") is None
    assert len(nbia.getNewStudiesInPatient(LUNG, pid, "2000/01/01")) == 2
    assert len(nbia.getUpdatedSeries("2000/01/01")) == len(nbia.getSeries())
    assert nbia.getUpdatedSeries("2999/01/01") is None


def test_series_size_sop_uids_and_single_image(api_site: PublicSite, tmp_path: Path) -> None:
    uid = api_site.catalogue.series[LUNG][0]
    size = nbia.getSeriesSize(uid)
    assert size[0]["ObjectCount"] == 3
    assert size[0]["TotalSizeInBytes"] > 0
    sops = [row["SOPInstanceUID"] for row in nbia.getSopInstanceUids(uid)]
    assert len(sops) == 3
    nbia.downloadImage(uid, sops[1], path=str(tmp_path))
    saved = tmp_path / uid / f"{sops[1]}.dcm"
    assert saved.read_bytes()[128:132] == b"DICM"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_download_series_plain_and_rerun(api_site: PublicSite, tmp_path: Path) -> None:
    series = nbia.getSeries(collection=LUNG)
    df = nbia.downloadSeries(series, path=str(tmp_path), format="df")
    assert isinstance(df, pd.DataFrame)
    assert len(df) == len(series)
    uid = series[0]["SeriesInstanceUID"]
    assert set(df["SeriesInstanceUID"]) == {row["SeriesInstanceUID"] for row in series}
    assert sorted(os.listdir(tmp_path / uid)) == ["1-1.dcm", "1-2.dcm", "1-3.dcm", "LICENSE"]
    licence = (tmp_path / uid / "LICENSE").read_text()
    assert LUNG in licence
    assert "Creative Commons" in licence
    before = (tmp_path / uid / "1-1.dcm").stat().st_mtime_ns
    again = nbia.downloadSeries(series, path=str(tmp_path), format="df")  # skips, still reports
    assert len(again) == len(series)
    assert (tmp_path / uid / "1-1.dcm").stat().st_mtime_ns == before


def test_download_series_with_hash_and_as_zip(api_site: PublicSite, tmp_path: Path) -> None:
    uids = api_site.catalogue.series[BRAIN][:2]
    nbia.downloadSeries(uids, path=str(tmp_path / "hash"), hash="y", input_type="list")
    folder = tmp_path / "hash" / uids[0]
    assert sorted(os.listdir(folder)) == ["00000001.dcm", "00000002.dcm", "md5hashes.csv"]
    rows = (folder / "md5hashes.csv").read_text().splitlines()
    assert rows[0] == "Filename,MD5Hash"
    for row in rows[1:]:
        name, digest = row.split(",")
        assert _md5(folder / name) == digest
    nbia.downloadSeries(uids, path=str(tmp_path / "zips"), input_type="list", as_zip=True)
    with zipfile.ZipFile(tmp_path / "zips" / f"{uids[1]}.zip") as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["LICENSE", "1-1.dcm", "1-2.dcm"]


def test_series_metadata_and_reports(api_site: PublicSite, tmp_path: Path) -> None:
    uids = api_site.catalogue.series[LUNG][:3]
    metadata = nbia.getSeriesList(uids)
    assert list(metadata["SeriesInstanceUID"]) == uids
    assert metadata.loc[0, "Collection"] == LUNG
    manifest = tmp_path / "lung.tcia"
    text = nbia.getSimpleSearch(collections=[LUNG], format="manifest_text")
    manifest.write_text(text)
    listed = nbia.manifestToList(str(manifest))
    assert sorted(listed) == sorted(api_site.catalogue.series[LUNG])
    report = nbia.makeSeriesReport(str(manifest), input_type="manifest", format="var")
    assert (report["subjects"], report["studies"], report["series"]) == (4, 8, 16)
    assert report["images"] == 16 * 3


def test_simple_search(api_site: PublicSite) -> None:
    found = nbia.getSimpleSearch(collections=[LUNG], modalities=["CT"], size=100)
    assert found["totalPatients"] == 4
    assert {r["subjectId"] for r in found["resultSet"]} == set(api_site.catalogue.patients[LUNG])
    uids = nbia.getSimpleSearch(collections=[BRAIN], size=100, format="uids")
    assert set(uids) == set(api_site.catalogue.series[BRAIN])
    anded = nbia.getSimpleSearch(modalities=["MR", "SEG"], modalityAnded=True, size=100)
    assert anded["totalPatients"] == 3
    dated = nbia.getSimpleSearch(fromDate="2021/01/01", toDate="2021/12/31", size=100)
    assert {r["project"] for r in dated["resultSet"]} == {BRAIN}
    assert nbia.getSimpleSearch(collections=[BREAST]) is None


def test_descriptions_tags_doi_and_cart(api_site: PublicSite) -> None:
    described = nbia.getCollectionDescriptions()
    assert [d["collectionName"] for d in described] == [BRAIN, LUNG]
    tags = nbia.getDicomTags(api_site.catalogue.series[LUNG][0])
    assert isinstance(tags, pd.DataFrame)
    modality = tags[tags["element"] == "(0008,0060)"]
    assert list(modality["data"]) == ["CT"]
    doi = "https://doi.org/10.0000/dicomhub.brain-mr-demo"
    assert nbia.getDoiMetadata(doi)[0]["collection"] == BRAIN
    assert len(nbia.getDoiMetadata(doi, output="series")) == len(api_site.catalogue.series[BRAIN])
    assert nbia.getSharedCart("no-such-cart") is None
