"""Download paths beyond tcia_utils: the NBIA Data Retriever's calls, and resumable images.

The Data Retriever's calls are shaped as its Java GUI and Linux CLI send them.

The GUI posts URL-encoded forms (Apache HttpClient's ``UrlEncodedFormEntity``)
to ``/nbia-download/servlet/…`` and reads a TAR with commons-compress, checking
each entry's size, the image count and total bytes announced in the series
line, and ``md5hashes.csv``; the checks below are the client's.  The CLI
sends plain GETs, its UID list unencoded in the query string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fixtures.public_data import BREAST, CT_IMAGE, LUNG, make_uid
from tests.publish.conftest import PASSWORDS, PublicSite
from tests.publish.nbia.site import hidden_blob

SERVLET = "/nbia-download/servlet"
V1 = "/nbia-api/services/v1"
V2 = "/nbia-api/services/v2"
#: The Java client's form content type.
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=ISO-8859-1"}


@pytest.fixture
def http(api_site: PublicSite) -> Iterator[httpx.Client]:
    with api_site.client() as client:
        yield client


def _series_info(http: httpx.Client, uids: list[str], **extra: str) -> httpx.Response:
    form = {"numberOfSeries": str(len(uids))}
    form.update({f"series{i}": uid for i, uid in enumerate(uids, start=1)})
    form.update(extra)
    return http.post(f"{SERVLET}/DownloadServletV4", data=form, headers=FORM)


def _download(http: httpx.Client, uid: str, sop_uids: str = "") -> httpx.Response:
    """The per-series POST of ``LocalSeriesDownloader#connectAndReadFromURL``, as a guest."""
    form = {
        "userId": "",
        "sopUids": sop_uids,
        "seriesUid": uid,
        "includeAnnotation": "true",
        "hasAnnotation": "No",
        "Range": "bytes=0-",
        "password": "",
        "newFileNames": "Yes",
        "getMD5Hash": "Yes",
    }
    return http.post(f"{SERVLET}/DownloadServletV4", data=form, headers=FORM)


def test_version_and_user_agreement(http: httpx.Client) -> None:
    answer = http.post(
        f"{SERVLET}/DownloadServletVersion", data={"os": "linux", "appVersion": "4.4"}, headers=FORM
    )
    assert answer.status_code == 200
    lines = answer.text.splitlines()
    assert len(lines) == 6
    assert lines[0] == "4.4"  # not ahead of the client: no upgrade prompt
    assert lines[2]
    assert lines[3] == "false"
    older = http.post(f"{SERVLET}/DownloadServletVersion", data={"appVersion": "3.2"})
    assert older.text.splitlines()[0] == "4.4"  # older clients are moved to the V4 flow
    assert http.post(f"{SERVLET}/DownloadServletVersion", data={"osx": "1"}).status_code == 400
    agreement = http.get(f"{V1}/getUserAgreementTxt")
    assert agreement.status_code == 200
    assert agreement.text == ""  # the CLI prompts only for a non-empty text


def test_series_information_lines(http: httpx.Client, api_site: PublicSite) -> None:
    uids = api_site.catalogue.series[LUNG][:3]
    answer = _series_info(http, [*uids, uids[0]])
    assert answer.status_code == 200
    lines = answer.text.splitlines()
    assert len(lines) == 4  # one per requested entry, or the client drops the batch
    fields = [line.split("|") for line in lines]
    assert all(len(row) == 24 for row in fields)
    assert [row[3] for row in fields] == [*uids, uids[0]]
    first = fields[0]
    assert first[0] == LUNG
    assert first[4] == "No"
    assert int(first[5]) == 3
    assert int(first[6]) > 0  # checked against the TAR's bytes in the download test
    assert first[11].count("-") == 2  # MM-DD-YYYY, as NBIA's descriptive folder names
    assert first[20] == CT_IMAGE
    assert first[21] == "CT Image Storage"
    assert first[22].startswith("Creative Commons")


def test_series_information_refusals(http: httpx.Client, api_site: PublicSite) -> None:
    public = api_site.catalogue.series[LUNG][0]
    limited = api_site.catalogue.series[BREAST][0]
    # a guest asking for a series it may not see, or one that does not exist: login needed
    assert _series_info(http, [public, limited]).status_code == 460
    assert _series_info(http, [public, "1.2.3.4.5"]).status_code == 460
    assert BREAST not in _series_info(http, [public, limited]).text
    # the GUI's signed-in mode (encrypted password header) is refused as a failed login
    signed_in = http.post(
        f"{SERVLET}/DownloadServletV4",
        data={"userId": "alice", "numberOfSeries": "1", "series1": public},
        headers={**FORM, "password": "c2VjcmV0"},
    )
    assert signed_in.status_code == 461
    for bad in ("abc", "0", "-1"):
        answer = http.post(f"{SERVLET}/DownloadServletV4", data={"numberOfSeries": bad})
        assert answer.status_code == 400, bad
    assert _series_info(http, ["1.2.abc"]).status_code == 400
    assert _series_info(http, ["../../etc/passwd"]).status_code == 400
    assert _series_info(http, [public], extra="x").status_code == 400
    huge = http.post(f"{SERVLET}/DownloadServletV4", data={"numberOfSeries": "9999999"})
    assert huge.status_code == 413
    assert http.post(f"{SERVLET}/DownloadServletV4", data={}).status_code == 400


def _entries(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as archive:
        out = {}
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            assert len(data) == member.size  # the client's per-entry size check
            out[member.name] = data
        return out


def test_series_tar_as_the_gui_checks_it(http: httpx.Client, api_site: PublicSite) -> None:
    uid = api_site.catalogue.series[LUNG][0]
    (line,) = _series_info(http, [uid]).text.splitlines()
    fields = line.split("|")
    answer = _download(http, uid)
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) == len(answer.content)
    entries = _entries(answer.content)
    names = list(entries)
    assert names[-1] == "md5hashes.csv"
    images = {name: data for name, data in entries.items() if name.endswith(".dcm")}
    assert len(images) == int(fields[5])
    assert sum(len(data) for data in images.values()) == int(fields[6])
    written = {name.split("^", 1)[1]: data for name, data in images.items()}
    assert sorted(written) == ["1-1.dcm", "1-2.dcm", "1-3.dcm"]
    rows = list(csv.reader(io.StringIO(entries["md5hashes.csv"].decode())))
    assert rows[0] == ["Filename", "MD5Hash"]
    for name, md5 in rows[1:]:
        assert hashlib.md5(written[name], usedforsecurity=False).hexdigest() == md5

    # a retry sends the SOP UIDs already received; exactly those are left out
    first_sop = names[0].split("^")[0]
    again = _entries(_download(http, uid, sop_uids=f"'{first_sop}'").content)
    assert [name.split("^")[0] for name in again if name.endswith(".dcm")] == [
        name.split("^")[0] for name in names[1:-1]
    ]
    plain = http.post(f"{SERVLET}/DownloadServletV4", data={"seriesUid": uid, "newFileNames": "No"})
    assert sorted(_entries(plain.content)) == sorted(f"{n.split('^')[0]}.dcm" for n in images)


def test_series_tar_refusals(http: httpx.Client, api_site: PublicSite) -> None:
    limited = api_site.catalogue.series[BREAST][0]
    for uid in (limited, "1.2.3.4.5"):
        answer = _download(http, uid)
        assert answer.status_code == 403
        assert answer.text == "Access Denied"
    for bad in ("1.2.abc", "../../etc/passwd", "1.2.3'; DROP TABLE series;--"):
        assert _download(http, bad).status_code == 400, bad
    unknown = http.post(f"{SERVLET}/DownloadServletV4", data={"seriesUid": "1.2", "x": "1"})
    assert unknown.status_code == 400
    uid = api_site.catalogue.series[LUNG][1]
    blob = _first_blob(api_site, uid)
    with hidden_blob(api_site, blob):
        missing = _download(http, uid)
        assert missing.status_code == 503
        assert b"ustar" not in missing.content  # no TAR started
    with (
        hidden_blob(api_site, blob, replacement=b"not the recorded bytes"),
        pytest.raises(httpx.HTTPError),
    ):
        _download(http, uid).read()


def _first_blob(site: PublicSite, series_uid: str) -> str:
    from sqlalchemy import select

    from dicomhub.core.db import Instance, Series

    with site.context.db.sessions() as session:
        key = session.scalars(
            select(Instance.blob_key)
            .join(Series, Series.id == Instance.series_id)
            .where(Series.series_instance_uid == series_uid)
            .order_by(Instance.instance_number)
        ).first()
    assert key is not None
    return key


def test_cli_denied_series_and_sop_classes(http: httpx.Client, api_site: PublicSite) -> None:
    public = api_site.catalogue.series[LUNG][:2]
    limited = api_site.catalogue.series[BREAST][0]
    url = f"{V1}/getDeniedSeries?userName=alice&format=csv&seriesList="
    assert http.get(url + ",".join(public), headers={"Accept": "text/csv"}).status_code == 204
    denied = http.get(url + ",".join([*public, limited]))
    assert denied.status_code == 200
    assert denied.text.splitlines() == ["SeriesInstanceUID", limited]  # header skipped by the CLI
    # the named user is not the caller: alice's grant counts only with her own credential
    bearer = {"Authorization": f"Bearer {api_site.alice_token}"}
    assert http.get(url + limited, headers=bearer).status_code == 204
    posted = http.post(f"{V1}/getDeniedSeries", data={"seriesList": limited, "format": "json"})
    assert posted.json() == [{"SeriesInstanceUID": limited}]
    assert http.get(f"{V1}/getDeniedSeries?seriesList=1.2.abc").status_code == 400
    assert http.get(f"{V1}/getDeniedSeries?seriesLst=1.2").status_code == 400
    assert http.get(f"{V1}/getDeniedSeries").status_code == 400

    classes = http.get(f"{V1}/getAllSOPClassDefinition")
    assert classes.status_code == 200
    table = dict(line.split("=", 1) for line in classes.text.splitlines())
    assert table[CT_IMAGE] == "CT Image Storage"
    assert http.get(f"{V1}/getAllSOPClassDefinition?x=1").status_code == 400


def test_cli_dcm_image(http: httpx.Client, api_site: PublicSite) -> None:
    uid = api_site.catalogue.series[LUNG][0]
    answer = http.get(
        f"{V1}/getDCMImage?SeriesInstanceUID={uid}&IncludeAnnotation=false&MD5Verification=true"
    )
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        names = archive.namelist()
        assert names == ["1-1.dcm", "1-2.dcm", "1-3.dcm", "md5hashes.csv"]  # no LICENSE
        assert archive.testzip() is None
    limited = api_site.catalogue.series[BREAST][0]
    assert http.get(f"{V1}/getDCMImage?SeriesInstanceUID={limited}").status_code == 404
    assert http.get(f"{V2}/getDCMImage?SeriesInstanceUID={uid}").status_code == 401
    token = httpx.post(
        f"{api_site.url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]},
    ).json()["access_token"]
    granted = http.get(
        f"{V2}/getDCMImage?SeriesInstanceUID={limited}&IncludeAnnotation=false",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert granted.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(granted.content)).namelist() == ["1-1.dcm", "1-2.dcm"]
    assert (
        http.get(f"{V1}/getDCMImage?SeriesInstanceUID={uid}&MD5Verification=maybe").status_code
        == 400
    )
    assert http.get(f"{V1}/getDCMImage").status_code == 400


def test_simple_search_manifest_drives_the_retriever(
    http: httpx.Client, api_site: PublicSite
) -> None:
    """The manifest lists the series of the page of patients asked for; its
    ``downloadServerUrl`` leads both retrievers to the routes above."""
    form = {"criteriaType0": "CollectionCriteria", "value0": LUNG, "start": "1", "size": "2"}
    answer = http.post("/nbia-api/services/v4/getManifestForSimpleSearch", data=form)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-nbia-manifest-file")
    lines = answer.text.splitlines()
    header = dict(line.split("=", 1) for line in lines[:6])
    uids = [line for line in lines[6:] if line]
    page = http.post("/nbia-api/services/v4/getSimpleSearch", data=form).json()["resultSet"]
    assert len(page) == 2
    expected = [
        uid
        for patient in page
        for study in patient["studyIdentifiers"]
        for uid in study["seriesIdentifiers"]
    ]
    assert uids == expected
    assert set(uids) < set(api_site.catalogue.series[LUNG])
    assert header["databasketId"].startswith("manifest-")

    server = header["downloadServerUrl"]
    assert server.endswith("nbia-download/servlet/DownloadServlet")
    lines_v4 = _series_info(http, uids)  # the GUI appends V4 to the servlet URL
    assert len(lines_v4.text.splitlines()) == len(uids)
    # the configured public base URL names the host; the paths are the clients' own
    public_api = urlsplit(server).path.replace(
        "nbia-download/servlet/DownloadServlet", "nbia-api/services/v1/"
    )
    denied = http.get(f"{public_api}getDeniedSeries?userName=x&format=csv&seriesList={uids[0]}")
    assert denied.status_code == 204
    nothing = http.post(
        "/nbia-api/services/v4/getManifestForSimpleSearch",
        data={"criteriaType0": "CollectionCriteria", "value0": BREAST},
    )
    assert [line for line in nothing.text.splitlines()[6:] if line] == []


# -- getSingleImage with byte ranges: a download resumed where it stopped, checked whole


def _single(http: httpx.Client, series: str, headers: dict[str, str]) -> httpx.Response:
    params = {"SeriesInstanceUID": series, "SOPInstanceUID": make_uid(series, 1)}
    return http.get("/nbia-api/services/v4/getSingleImage", params=params, headers=headers)


def test_ranges_resume_and_refuse(http: httpx.Client, api_site: PublicSite) -> None:
    series = api_site.catalogue.series[LUNG][0]
    whole = _single(http, series, {})
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    data = whole.content
    size = len(data)
    tag = whole.headers["etag"]

    # a download manager resumes after the first half
    half = size // 2
    rest = _single(http, series, {"Range": f"bytes={half}-", "If-Range": tag})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {half}-{size - 1}/{size}"
    assert int(rest.headers["content-length"]) == size - half
    assert data[:half] + rest.content == data

    assert _single(http, series, {"Range": "bytes=0-9"}).content == data[:10]
    assert _single(http, series, {"Range": "bytes=-16"}).content == data[-16:]
    assert _single(http, series, {"Range": f"bytes=5-{size * 10}"}).content == data[5:]

    past = _single(http, series, {"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    assert _single(http, series, {"Range": "bytes=-0"}).status_code == 416
    # several ranges, other units, nonsense and a stale If-Range: the whole file
    for header in ("bytes=0-1,5-6", "items=0-3", "bytes=abc", "bytes=9-2", "bytes=-"):
        answer = _single(http, series, {"Range": header})
        assert answer.status_code == 200, header
        assert answer.content == data
    stale = _single(http, series, {"Range": "bytes=0-9", "If-Range": '"0000"'})
    assert stale.status_code == 200
    assert stale.content == data


def test_a_damaged_file_never_completes_a_range(http: httpx.Client, api_site: PublicSite) -> None:
    series = api_site.catalogue.series[LUNG][2]
    size = len(_single(http, series, {}).content)
    with hidden_blob(api_site, _first_blob(api_site, series), replacement=b"\0" * size):
        with pytest.raises(httpx.HTTPError):
            _single(http, series, {"Range": "bytes=0-9"}).read()
        with pytest.raises(httpx.HTTPError):
            _single(http, series, {}).read()
