"""dicomweb-client (from PyPI, unchanged) against the running public app."""

from __future__ import annotations

import io

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian

from tests.fixtures.public_data import BRAIN, BREAST, LUNG
from tests.publish.conftest import PublicSite


@pytest.fixture
def client(api_site: PublicSite) -> DICOMwebClient:
    return DICOMwebClient(url=f"{api_site.url}/dicomweb")


def _uids(results: list[dict[str, dict[str, list[str]]]], tag: str) -> list[str]:
    return [result[tag]["Value"][0] for result in results]


def test_search_for_studies(client: DICOMwebClient, api_site: PublicSite) -> None:
    studies = client.search_for_studies()
    expected = api_site.catalogue.studies[LUNG] + api_site.catalogue.studies[BRAIN]
    assert sorted(_uids(studies, "0020000D")) == sorted(expected)
    lung = client.search_for_studies(search_filters={"PatientID": "LUNG-001"})
    assert len(lung) == 2
    assert lung[0]["00201206"]["Value"] == [2]
    assert lung[0]["00201208"]["Value"] == [6]
    assert lung[0]["00080061"]["Value"] == ["CT"]
    wild = client.search_for_studies(search_filters={"PatientID": "BRAIN-00?"})
    assert len(wild) == 3
    assert len(client.search_for_studies(search_filters={"PatientName": "lung*"})) == 8
    dated = client.search_for_studies(search_filters={"StudyDate": "20210101-20211231"})
    assert sorted(_uids(dated, "0020000D")) == sorted(api_site.catalogue.studies[BRAIN])
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "SEG"})
    page = client.search_for_studies(limit=3, offset=2, fuzzymatching=False)
    assert _uids(page, "0020000D") == _uids(studies, "0020000D")[2:5]


def test_search_for_series_and_instances(client: DICOMwebClient, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[BRAIN][0]
    series = client.search_for_series(study)
    assert [s["00080060"]["Value"][0] for s in series] == ["MR", "MR", "SEG"]
    seg = client.search_for_series(search_filters={"Modality": "SEG"})
    assert len(seg) == 3
    ct = client.search_for_series(
        search_filters={"Modality": "CT", "Manufacturer": "SIEMENS"}, fields=["StudyDate"]
    )
    assert len(ct) == 8
    assert "00080020" in ct[0]
    series_uid = series[0]["0020000E"]["Value"][0]
    instances = client.search_for_instances(study, series_uid, fields=["PatientID"])
    assert len(instances) == 2
    assert instances[0]["00100020"]["Value"] == ["BRAIN-001"]
    assert instances[0]["00200013"]["Value"] == [1]
    everywhere = client.search_for_instances(
        search_filters={"SOPClassUID": "1.2.840.10008.5.1.4.1.1.66.4"}
    )
    assert len(everywhere) == 3 * 2


def test_retrieve_instance_series_study(client: DICOMwebClient, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][0]
    series = client.search_for_series(study)
    series_uid = series[0]["0020000E"]["Value"][0]
    sops = _uids(client.search_for_instances(study, series_uid), "00080018")
    ds = client.retrieve_instance(study, series_uid, sops[0])
    assert ds.SOPInstanceUID == sops[0]
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    as_stored = client.retrieve_instance(
        study, series_uid, sops[0], media_types=(("application/dicom", "*"),)
    )
    assert as_stored.PixelData == ds.PixelData
    assert len(client.retrieve_series(study, series_uid)) == 3
    assert len(client.retrieve_study(study)) == 6


def test_metadata_frames_and_bulk(client: DICOMwebClient, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][1]
    series_uid = client.search_for_series(study)[0]["0020000E"]["Value"][0]
    metadata = client.retrieve_series_metadata(study, series_uid)
    assert len(metadata) == 3
    assert metadata[0]["00080060"]["Value"] == ["CT"]
    sop = metadata[0]["00080018"]["Value"][0]
    assert len(client.retrieve_study_metadata(study)) == 6
    one = client.retrieve_instance_metadata(study, series_uid, sop)
    assert one["00080018"]["Value"] == [sop]
    frames = client.retrieve_instance_frames(study, series_uid, sop, frame_numbers=[1])
    stored = client.retrieve_instance(study, series_uid, sop)
    assert frames == [stored.PixelData]
    octet = client.retrieve_instance_frames(
        study, series_uid, sop, frame_numbers=[1], media_types=("application/octet-stream",)
    )
    assert octet == [stored.PixelData]
    bulk = client.retrieve_bulkdata(
        f"{api_site.url}/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}/bulk/7FE00010"
    )
    assert bulk == [stored.PixelData]


def test_content_length_and_cors(api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][0]
    with httpx.Client(base_url=f"{api_site.url}/dicomweb", timeout=30) as http:
        answer = http.get(
            f"/studies/{study}",
            headers={"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert answer.status_code == 200
        assert int(answer.headers["content-length"]) == len(answer.content)
        parts = answer.content.split(b"\r\n\r\n")[1:]
        assert dcmread(io.BytesIO(parts[0])).StudyInstanceUID == study
        cors = http.get("/studies", headers={"origin": "https://viewer.example.org"})
        assert cors.headers["access-control-allow-origin"] == "https://viewer.example.org"
        foreign = http.get("/studies", headers={"origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in foreign.headers


def test_limited_collection_needs_a_grant(api_site: PublicSite) -> None:
    limited_study = api_site.catalogue.studies[BREAST][0]
    guest = DICOMwebClient(url=f"{api_site.url}/dicomweb")
    assert limited_study not in _uids(guest.search_for_studies(), "0020000D")
    alice = DICOMwebClient(
        url=f"{api_site.url}/dicomweb", headers={"Authorization": f"Bearer {api_site.alice_token}"}
    )
    assert limited_study in _uids(alice.search_for_studies(), "0020000D")
    assert len(alice.retrieve_study(limited_study)) == 4
