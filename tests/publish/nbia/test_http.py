"""NBIA conventions and bad input, over HTTP: formats, statuses, ZIPs that never come up short."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.public_data import BRAIN, LUNG, make_uid
from tests.publish.conftest import PublicSite
from tests.publish.nbia.site import hidden_blob

V4 = "/nbia-api/services/v4"
BAD_UIDS = ("1.2.abc", "../../etc/passwd", "1" * 65, "1.2.3'; DROP TABLE series;--", "1..2")
NASTY_NAMES = ("../../etc/passwd", "x' OR '1'='1", "%", "*", "LUNG-CT-DEMO' --", "<script>")


@pytest.fixture
def http(api_site: PublicSite) -> Iterator[httpx.Client]:
    with api_site.client() as client:
        yield client


def test_formats(http: httpx.Client) -> None:
    as_json = http.get(f"{V4}/getSeries", params={"Collection": BRAIN})
    assert as_json.headers["content-type"] == "application/json"
    rows = as_json.json()
    as_csv = http.get(f"{V4}/getSeries", params={"Collection": BRAIN, "format": "CSV"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["SeriesInstanceUID"] for r in parsed] == [r["SeriesInstanceUID"] for r in rows]
    assert as_csv.text.startswith('"SeriesInstanceUID","StudyInstanceUID"')
    xml = http.get(f"{V4}/getCollectionValues", params={"format": "xml"})
    assert "<Collection>BRAIN-MR-DEMO</Collection>" in xml.text
    html = http.get(f"{V4}/getCollectionValues", params={"format": "HTML"})
    assert "<td>LUNG-CT-DEMO</td>" in html.text
    download = http.get(f"{V4}/getModalityValues", params={"format": "csv-download"})
    assert "attachment" in download.headers["content-disposition"]
    assert http.get(f"{V4}/getCollectionValues", params={"format": "pdf"}).status_code == 400


def test_empty_results_are_an_empty_200(http: httpx.Client) -> None:
    for params in ({"Collection": "NOPE"}, {"Modality": "XX"}, {"PatientID": "nobody"}):
        answer = http.get(f"{V4}/getSeries", params=params)
        assert answer.status_code == 200
        assert answer.content == b""


def test_unknown_parameters_are_400(http: httpx.Client) -> None:
    for path in ("getSeries", "getCollectionValues", "getPatient", "getImage", "getDicomTags"):
        answer = http.get(f"{V4}/{path}", params={"Colection": LUNG})
        assert answer.status_code == 400, path
        assert "Invalid query parameter" in answer.json()["message"]
    form = http.post(f"{V4}/getSeriesMetadata", data={"lst": "1.2.3"})
    assert form.status_code == 400
    assert http.post(f"{V4}/getSimpleSearch", data={"what": "x"}).status_code == 400


def test_required_parameters(http: httpx.Client) -> None:
    for path in ("getImage", "getSeriesSize", "getSOPInstanceUIDs", "getSingleImage"):
        assert http.get(f"{V4}/{path}").status_code == 400, path
    assert (
        http.get(f"{V4}/getPatientByCollectionAndModality", params={"Collection": LUNG}).status_code
        == 400
    )
    assert http.get(f"{V4}/NewPatientsInCollection", params={"Collection": LUNG}).status_code == 400
    assert http.get("/nbia-api/services/v1/getContentsByName").status_code == 400
    assert http.post(f"{V4}/getSeriesMetadata", data={}).status_code == 400


def test_malformed_uids_dates_and_flags(http: httpx.Client, api_site: PublicSite) -> None:
    for uid in BAD_UIDS:
        for path in ("getSeries", "getImage", "getSOPInstanceUIDs", "getSeriesSize"):
            answer = http.get(f"{V4}/{path}", params={"SeriesInstanceUID": uid})
            assert answer.status_code == 400, (path, uid)
        assert http.post(f"{V4}/getSeriesMetadata", data={"list": uid}).status_code == 400
    for bad in ("2020-13-45", "13-01-2020", "yesterday", "02-30-2021", "1" * 50):
        answer = http.get(f"{V4}/getUpdatedSeries", params={"fromDate": bad})
        assert answer.status_code == 400, bad
    uid = api_site.catalogue.series[LUNG][0]
    answer = http.get(f"{V4}/getImage", params={"SeriesInstanceUID": uid, "NewFileNames": "maybe"})
    assert answer.status_code == 400


def test_hostile_names_match_nothing(http: httpx.Client) -> None:
    for name in NASTY_NAMES:
        for key in ("Collection", "Modality", "BodyPartExamined", "Manufacturer", "PatientID"):
            answer = http.get(f"{V4}/getSeries", params={key: name})
            assert answer.status_code == 200, (key, name)
            assert answer.content == b"", (key, name)
    assert http.get(f"{V4}/getSeries", params={"Collection": "x" * 500}).status_code == 400
    assert http.get(f"{V4}/getSeries", params={"Collection": "a\x00b"}).status_code == 400


def test_unknown_series_is_404_not_an_empty_zip(http: httpx.Client) -> None:
    answer = http.get(f"{V4}/getImage", params={"SeriesInstanceUID": "1.2.3.4.5"})
    assert answer.status_code == 404
    single = http.get(
        f"{V4}/getSingleImage", params={"SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.4"}
    )
    assert single.status_code == 404


def test_get_image_zip_as_nbia_builds_it(http: httpx.Client, api_site: PublicSite) -> None:
    uid = api_site.catalogue.series[LUNG][0]
    answer = http.get(
        f"{V4}/getImage",
        params={"SeriesInstanceUID": uid, "NewFileNames": "Yes", "IncludeMD5": "Yes"},
    )
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.headers["content-disposition"] == f'attachment; filename="{uid}.zip"'
    with zipfile.ZipFile(io.BytesIO(answer.content)) as zf:
        assert zf.namelist() == ["LICENSE", "1-1.dcm", "1-2.dcm", "1-3.dcm", "md5hashes.csv"]
        table = zf.read("md5hashes.csv").decode().splitlines()
        assert table[0] == "Filename,MD5Hash"
        for row in table[1:]:
            name, digest = row.split(",")
            assert hashlib.md5(zf.read(name), usedforsecurity=False).hexdigest() == digest
    plain = http.get(f"{V4}/getImage", params={"SeriesInstanceUID": uid})
    with zipfile.ZipFile(io.BytesIO(plain.content)) as zf:
        assert zf.namelist() == ["LICENSE", "00000001.dcm", "00000002.dcm", "00000003.dcm"]


def test_missing_blob_is_an_error_before_any_byte(http: httpx.Client, api_site: PublicSite) -> None:
    uid = api_site.catalogue.series[BRAIN][0]
    with httpx.Client(base_url=api_site.url) as fresh:
        sop = make_uid(uid, 2)
        single = fresh.get(
            f"{V4}/getSingleImage", params={"SeriesInstanceUID": uid, "SOPInstanceUID": sop}
        )
        body = single.content
    key = _blob_key(api_site, sop)
    with hidden_blob(api_site, key):
        answer = http.get(
            f"{V4}/getImage", params={"SeriesInstanceUID": uid, "NewFileNames": "Yes"}
        )
        assert answer.status_code == 503
        assert "missing" in answer.json()["message"]
    with hidden_blob(api_site, key, replacement=body[:-1] + bytes([body[-1] ^ 1])):
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(f"{V4}/getImage", params={"SeriesInstanceUID": uid})
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(
                f"{V4}/getSingleImage", params={"SeriesInstanceUID": uid, "SOPInstanceUID": sop}
            )


def _blob_key(site: PublicSite, sop: str) -> str:
    from sqlalchemy import select

    from dicomhub.core.db import Instance

    with site.context.db.sessions() as session:
        key = session.scalar(select(Instance.blob_key).where(Instance.sop_instance_uid == sop))
    assert key is not None
    return key


def test_series_metadata_with_a_huge_list(http: httpx.Client, api_site: PublicSite) -> None:
    known = api_site.catalogue.series[LUNG][:2]
    unknown = [make_uid("nothing", n) for n in range(20_000)]
    answer = http.post(
        f"{V4}/getSeriesMetadata",
        data={"list": ",".join(unknown[:10_000] + known + unknown[10_000:])},
    )
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["SeriesInstanceUID"] for r in rows] == known
    too_many = ",".join(make_uid("x", n) for n in range(50_001))
    assert http.post(f"{V4}/getSeriesMetadata", data={"list": too_many}).status_code == 413
    as_json = http.post(f"{V4}/getSeriesMetadata", data={"list": known[0], "format": "JSON"})
    assert as_json.json()[0]["SeriesInstanceUID"] == known[0]


def test_dates_are_mm_dd_yyyy(http: httpx.Client) -> None:
    studies = http.get(f"{V4}/getPatientStudy", params={"Collection": LUNG}).json()
    month, day, year = studies[0]["StudyDate"].split("-")
    assert (len(month), len(day), len(year)) == (2, 2, 4)
    assert (
        http.get(
            f"{V4}/NewStudiesInPatientCollection",
            params={"Collection": LUNG, "fromDate": "01/01/2000"},
        ).status_code
        == 200
    )
