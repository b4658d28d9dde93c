"""dicomweb-client (from PyPI, unchanged): each search and retrieve call the viewers make.

The sweep covers what OHIF and notebooks send beyond the basic calls: every
search with the common filters (fuzzy matching off, paging, ``includefield``
all and specific, open date ranges, wildcards, person names, multi-valued
``ModalitiesInStudy``, UID lists as Python lists), each retrieve in the media
types dicomweb-client offers for uncompressed data, the ``iter_*`` variants,
metadata with a Pixel Data BulkDataURI, and the response details PS3.18 fixes:
204 for no match, a Warning when a page is not the last, and a Content-Type
that names the transfer syntax of a multipart body.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from sqlalchemy import select, update

from dicomhub.core.db import Instance, Series, Study, make_engine, make_sessionmaker
from dicomhub.core.dicom.header import read_header
from tests.fixtures.public_data import BRAIN, LUNG
from tests.publish.conftest import PublicSite

Results = list[dict[str, Any]]
OCTET = "application/octet-stream"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture
def client(api_site: PublicSite) -> DICOMwebClient:
    return DICOMwebClient(url=f"{api_site.url}/dicomweb")


@pytest.fixture
def web(api_site: PublicSite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api_site.url}/dicomweb", timeout=30) as http:
        yield http


def _values(results: Results, tag: str) -> list[Any]:
    return [result[tag]["Value"][0] for result in results]


def _first_series(client: DICOMwebClient, study: str) -> tuple[str, str]:
    series = client.search_for_series(study)[0]["0020000E"]["Value"][0]
    sop = client.search_for_instances(study, series)[0]["00080018"]["Value"][0]
    return series, sop


def test_study_search_filters(client: DICOMwebClient, api_site: PublicSite) -> None:
    brain, lung = api_site.catalogue.studies[BRAIN], api_site.catalogue.studies[LUNG]
    every = client.search_for_studies(fuzzymatching=False)
    assert len(every) == len(brain) + len(lung)
    full = client.search_for_studies(fields=["all"], limit=1)[0]
    assert {"00201206", "00201208", "00080061", "00100010"} <= set(full)
    picked = client.search_for_studies(fields=["StudyDescription", "00100030"], limit=1)[0]
    assert picked["00081030"]["Value"] == ["CT study"]
    assert picked["00100030"] == {"vr": "DA"}  # asked for, known, empty
    assert client.search_for_studies(search_filters={"PatientName": "lung^001"}) == []
    assert len(client.search_for_studies(search_filters={"PatientName": "*-00?"})) == len(every)
    after = client.search_for_studies(search_filters={"StudyDate": "20210101-"})
    assert sorted(_values(after, "0020000D")) == sorted(brain)
    before = client.search_for_studies(search_filters={"StudyDate": "-20201231"})
    assert sorted(_values(before, "0020000D")) == sorted(lung)
    assert len(client.search_for_studies(search_filters={"00100020": "BRAIN-001"})) == 1


def test_multi_valued_filters(client: DICOMwebClient, api_site: PublicSite) -> None:
    brain, lung = api_site.catalogue.studies[BRAIN], api_site.catalogue.studies[LUNG]
    seg = client.search_for_studies(search_filters={"ModalitiesInStudy": "SEG"})
    assert [r["00080061"]["Value"] for r in seg] == [["MR", "SEG"]] * len(brain)
    for both in ("SEG\\CT", "SEG,CT", ["SEG", "CT"]):
        found = client.search_for_studies(search_filters={"ModalitiesInStudy": both})
        assert len(found) == len(brain) + len(lung), both
    two = client.search_for_studies(search_filters={"StudyInstanceUID": lung[:2]})
    assert sorted(_values(two, "0020000D")) == sorted(lung[:2])
    ids = client.search_for_series(search_filters={"PatientID": ["LUNG-001", "BRAIN-002"]})
    assert sorted(set(_values(ids, "00080060"))) == ["CT", "MR", "SEG"]


def test_lower_level_attributes_narrow_to_their_holders(
    client: DICOMwebClient, web: httpx.Client, api_site: PublicSite
) -> None:
    brain, lung = api_site.catalogue.studies[BRAIN], api_site.catalogue.studies[LUNG]
    seg = client.search_for_studies(search_filters={"Modality": "SEG"})
    assert sorted(_values(seg, "0020000D")) == sorted(brain)
    by_class = client.search_for_studies(search_filters={"SOPClassUID": SEG_STORAGE})
    assert sorted(_values(by_class, "0020000D")) == sorted(brain)
    described = client.search_for_studies(search_filters={"SeriesDescription": "Lung*"})
    assert sorted(_values(described, "0020000D")) == sorted(lung)
    series = api_site.catalogue.series[LUNG][0]
    sop = client.search_for_instances(search_filters={"SeriesInstanceUID": series})[0]
    holder = client.search_for_series(
        search_filters={"SOPInstanceUID": sop["00080018"]["Value"][0]}
    )
    assert _values(holder, "0020000E") == [series]
    limited = web.get("/studies", params={"Modality": "MG"})
    assert (limited.status_code, limited.content) == (204, b"")  # nothing of a hidden collection
    assert "warning" not in limited.headers


def test_series_and_instance_searches(client: DICOMwebClient, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[BRAIN][0]
    assert len(client.search_for_series(study, search_filters={"Modality": "SEG"})) == 1
    full = client.search_for_series(fields=["all"], limit=1)[0]
    assert {"00201209", "00080020", "00100020"} <= set(full)
    assert len(client.search_for_series(search_filters={"SeriesNumber": 3})) == 3
    described = client.search_for_series(search_filters={"SeriesDescription": "T? *"})
    assert set(_values(described, "0008103E")) == {"T1 AX MPRAGE", "T2 FLAIR ax"}
    in_2021 = client.search_for_series(search_filters={"StudyDate": "20210101-20211231"})
    assert len(in_2021) == 9
    series, _sop = _first_series(client, study)
    assert len(client.search_for_instances(study)) == 6
    everything = client.search_for_instances(study, series, fields=["all"])
    assert everything[0]["00100020"]["Value"] == ["BRAIN-001"]
    second = client.search_for_instances(search_filters={"InstanceNumber": 2, "Modality": "SEG"})
    assert len(second) == 3


def test_paging_and_empty_results(
    client: DICOMwebClient, web: httpx.Client, api_site: PublicSite
) -> None:
    every = client.search_for_series()
    paged = client.search_for_series(limit=4, get_remaining=True)
    assert _values(paged, "0020000E") == _values(every, "0020000E")
    instances = client.search_for_instances(limit=25, get_remaining=True)
    assert len(instances) == sum(api_site.catalogue.instances[n] for n in (LUNG, BRAIN))
    assert client.search_for_studies(offset=1000) == []
    assert client.search_for_studies(search_filters={"PatientID": "NOPE"}) == []
    page = web.get("/studies", params={"limit": "2"})
    assert page.status_code == 200
    assert "additional results" in page.headers["warning"]
    studies = len(client.search_for_studies())
    last = web.get("/studies", params={"limit": "2", "offset": str(studies - 1)})
    assert len(last.json()) == 1
    assert "warning" not in last.headers
    for path in ("/studies", "/series", "/instances"):
        empty = web.get(path, params={"PatientID": "NOPE"})
        assert (empty.status_code, empty.content) == (204, b""), path
    nothing_under = web.get(f"/studies/{api_site.catalogue.studies[LUNG][0]}/series?Modality=MR")
    assert nothing_under.status_code == 204


def _dicom(answer: httpx.Response) -> list[Any]:
    boundary = answer.headers["content-type"].rsplit("boundary=", 1)[1].encode()
    parts = answer.content.split(b"--" + boundary)[1:-1]
    return [dcmread(io.BytesIO(part.split(b"\r\n\r\n", 1)[1][:-2])) for part in parts]


def test_retrieve_in_each_uncompressed_media_type(
    client: DICOMwebClient, web: httpx.Client, api_site: PublicSite
) -> None:
    study = api_site.catalogue.studies[LUNG][0]
    series, sop = _first_series(client, study)
    for media_types in (
        None,
        ("application/dicom",),
        (("application/dicom", "*"),),
        (("application/dicom", ExplicitVRLittleEndian),),
    ):
        one = client.retrieve_instance(study, series, sop, media_types=media_types)
        assert one.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert len(client.retrieve_series(study, series, media_types=media_types)) == 3
        assert len(client.retrieve_study(study, media_types=media_types)) == 6
    assert len(list(client.iter_series(study, series))) == 3
    assert len(list(client.iter_study(study))) == 6
    as_stored = web.get(
        f"/studies/{study}/series/{series}",
        headers={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    content_type = as_stored.headers["content-type"]
    assert content_type.startswith('multipart/related; type="application/dicom"')
    assert f"transfer-syntax={ExplicitVRLittleEndian};" in content_type
    implicit = web.get(
        f"/studies/{study}/series/{series}/instances/{sop}",
        headers={
            "accept": 'multipart/related; type="application/dicom"; '
            f"transfer-syntax={ImplicitVRLittleEndian}"
        },
    )
    assert implicit.status_code == 200
    assert f"transfer-syntax={ImplicitVRLittleEndian};" in implicit.headers["content-type"]
    (ds,) = _dicom(implicit)
    assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert ds.PixelData == one.PixelData


def test_frames_and_metadata(
    client: DICOMwebClient, web: httpx.Client, api_site: PublicSite
) -> None:
    study = api_site.catalogue.studies[BRAIN][0]
    series, sop = _first_series(client, study)
    pixels = client.retrieve_instance(study, series, sop).PixelData
    for media_types in (None, (OCTET,), ((OCTET, "*"),), ((OCTET, ExplicitVRLittleEndian),)):
        frames = client.retrieve_instance_frames(study, series, sop, [1], media_types=media_types)
        assert frames == [pixels], media_types
    assert list(client.iter_instance_frames(study, series, sop, [1])) == [pixels]
    raw = web.get(
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        headers={"accept": f'multipart/related; type="{OCTET}"; transfer-syntax=*'},
    )
    assert raw.headers["content-type"].startswith(
        f'multipart/related; type="{OCTET}"; transfer-syntax={ExplicitVRLittleEndian}; boundary='
    )
    assert len(client.retrieve_study_metadata(study)) == 6
    assert len(client.retrieve_series_metadata(study, series)) == 2
    one = client.retrieve_instance_metadata(study, series, sop)
    assert one["00083002"]["Value"] == [ExplicitVRLittleEndian]


@contextmanager
def _full_headers(site: PublicSite, series_uid: str) -> Iterator[None]:
    """Give one series' instances the header promotion stores (Rows and all), then restore."""
    engine = make_engine(site.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Instance.id, Instance.blob_key, Instance.header)
                .join(Series, Series.id == Instance.series_id)
                .where(Series.series_instance_uid == series_uid)
            ).all()
            for ident, key, _header in rows:
                header = read_header(site.context.store.get(key)).to_json()
                session.execute(update(Instance).where(Instance.id == ident).values(header=header))
            session.commit()
            try:
                yield
            finally:
                for ident, _key, saved in rows:
                    session.execute(
                        update(Instance).where(Instance.id == ident).values(header=saved)
                    )
                session.commit()
    finally:
        engine.dispose()


def test_pixel_data_bulk_data_uri(client: DICOMwebClient, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][1]
    series, sop = _first_series(client, study)
    pixels = client.retrieve_instance(study, series, sop).PixelData
    with _full_headers(api_site, series):
        meta = client.retrieve_instance_metadata(study, series, sop)
        found = client.search_for_instances(study, series, fields=["Rows"])
    assert meta["00280010"]["Value"] == [4]
    assert found[0]["00280010"]["Value"] == [4]
    pixel = meta["7FE00010"]
    assert pixel["vr"] == "OW"  # 16 bits allocated, native
    uri = pixel["BulkDataURI"]
    path = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010"
    assert uri.startswith("http://127.0.0.1")  # absolute
    assert uri.endswith(path)
    # dicomweb-client sends its Host header without the port, so the server
    # can only echo the host it was given; follow the path on the real one.
    url = api_site.url + path
    assert client.retrieve_bulkdata(url) == [pixels]
    assert list(client.iter_bulkdata(url)) == [pixels]
    assert client.retrieve_bulkdata(url, media_types=(OCTET,)) == [pixels]
    assert client.retrieve_bulkdata(url, byte_range=(4, 11)) == [pixels[4:12]]
    past = httpx.get(url, headers={"Range": f"bytes={len(pixels)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(pixels)}"


def test_unacceptable_and_unknown(web: httpx.Client, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][0]
    series = api_site.catalogue.series[LUNG][0]
    base = f"/studies/{study}/series/{series}"
    sops = web.get(f"{base}/instances").json()
    sop = sops[0]["00080018"]["Value"][0]
    frames = web.get(f"{base}/instances/{sop}/frames/1", headers={"accept": "image/jpeg"})
    assert frames.status_code == 406
    assert "octet-stream" in frames.json()["message"]
    big_endian = web.get(
        f"{base}/instances/{sop}",
        headers={
            "accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.2"
        },
    )
    assert big_endian.status_code == 406
    xml = web.get(f"{base}/metadata", headers={"accept": "application/dicom+xml"})
    assert xml.status_code == 406
    other_study = api_site.catalogue.studies[LUNG][1]
    assert web.get(f"/studies/{other_study}/series/{series}/metadata").status_code == 404
    assert web.get(f"{base}/instances/1.2.3.4").status_code == 404
    assert web.get(f"{base}/instances/1.2.3.4/metadata").status_code == 404
    assert web.get("/studies", params={"StudyInstanceUID": ["1.2.3", "x.y"]}).status_code == 400
    assert web.get("/studies", params={"ModalitiesInStudy": ""}).status_code == 200  # universal


@contextmanager
def _study_times(site: PublicSite, times: dict[str, str]) -> Iterator[None]:
    """Give studies a StudyTime (the catalogue has none) for the length of a block."""
    engine = make_engine(site.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            for uid, value in times.items():
                session.execute(
                    update(Study).where(Study.study_instance_uid == uid).values(study_time=value)
                )
            session.commit()
            try:
                yield
            finally:
                session.execute(
                    update(Study)
                    .where(Study.study_instance_uid.in_(list(times)))
                    .values(study_time="")
                )
                session.commit()
    finally:
        engine.dispose()


def test_time_ranges(client: DICOMwebClient, web: httpx.Client, api_site: PublicSite) -> None:
    morning, afternoon = api_site.catalogue.studies[BRAIN][:2]
    with _study_times(api_site, {morning: "093000", afternoon: "141500.25"}):
        for value, expected in (
            ("093000", [morning]),
            ("0900-1000", [morning]),
            ("-1415", [morning, afternoon]),  # up to 14:15:59.999999
            ("1415-", [afternoon]),
            ("141500.3-", []),
            ("000000-235959", [morning, afternoon]),
        ):
            found = client.search_for_studies(search_filters={"StudyTime": value})
            assert sorted(_values(found, "0020000D")) == sorted(expected), value
        for bad in ("9am", "25-", "1200-1100", "-"):
            assert web.get("/studies", params={"StudyTime": bad}).status_code == 400, bad
