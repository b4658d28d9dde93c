"""DICOMweb: malformed requests get a clear 400/406, and limited collections stay invisible."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, closing

import httpx
import pytest

from tests.fixtures.public_data import BREAST, LUNG, make_uid
from tests.publish.conftest import PublicSite

SECRETS = (BREAST, "HOLOGIC", "Selenia", "BREAST-0", "L CC", "R MLO")


@pytest.fixture
def web(api_site: PublicSite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api_site.url}/dicomweb", timeout=30) as client:
        yield client


def test_bad_queries_are_400(web: httpx.Client) -> None:
    for params in (
        {"NoSuchThing": "1"},
        {"StudyInstanceUID": "1.2.abc"},
        {"StudyInstanceUID": "../../etc/passwd"},
        {"StudyDate": "2020-99-99"},
        {"StudyDate": "20200101-20190101"},
        {"StudyDate": "-"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "0"},
        {"offset": "99999999999"},
        {"fuzzymatching": "maybe"},
        {"includefield": "NotAnAttribute"},
        {"PatientName": "a\x00b"},
    ):
        answer = web.get("/studies", params=params)
        assert answer.status_code == 400, params
    assert web.get("/series", params={"SeriesNumber": "one"}).status_code == 400
    assert web.get("/instances", params={"InstanceNumber": "1.5"}).status_code == 400


def test_huge_limit_is_clamped_with_a_warning(web: httpx.Client) -> None:
    answer = web.get("/series", params={"limit": "10000000"})
    assert answer.status_code == 200
    assert "299" in answer.headers["warning"]
    assert len(answer.json()) == 16 + 9
    fuzzy = web.get("/studies", params={"fuzzymatching": "true"})
    assert "fuzzy" in fuzzy.headers["warning"]
    unsupported = web.get("/studies", params={"ReferringPhysicianName": "X*"})
    assert unsupported.status_code == 200
    assert "ReferringPhysicianName" in unsupported.headers["warning"]


def test_hostile_values_match_nothing(web: httpx.Client) -> None:
    for value in ("x' OR '1'='1", "%", "_", "../../etc", "LUNG%"):
        answer = web.get("/studies", params={"PatientID": value})
        assert answer.status_code == 204, value  # no match (PS3.18)
        assert answer.content == b"", value


def test_retrieve_errors(web: httpx.Client, api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[LUNG][0]
    assert web.get("/studies/1.2.3").status_code == 404
    assert web.get("/studies/not-a-uid").status_code == 400
    assert web.get("/studies/1.2.3/series/1.2.4/instances/1.2.5/frames/1").status_code == 404
    series = api_site.catalogue.series[LUNG][0]
    sop = make_uid(series, 1)
    base = f"/studies/{study}/series/{series}/instances/{sop}"
    assert web.get(f"{base}/frames/0").status_code == 400
    assert web.get(f"{base}/frames/1,a").status_code == 400
    assert web.get(f"{base}/frames/2").status_code == 404
    assert web.get(f"{base}/bulk/zz").status_code == 400
    assert web.get(f"{base}/bulk/00100010").status_code == 404
    assert (
        web.get(f"/studies/{study}/series/{api_site.catalogue.series[LUNG][5]}").status_code == 404
    )
    unacceptable = web.get(
        base,
        headers={
            "accept": 'multipart/related; type="application/dicom"; '
            "transfer-syntax=1.2.840.10008.1.2.4.50"
        },
    )
    assert unacceptable.status_code == 406
    assert web.get(base, headers={"accept": "text/html"}).status_code == 406
    assert web.get("/studies", headers={"accept": "application/dicom+xml"}).status_code == 406


def test_strangers_see_nothing_limited(api_site: PublicSite) -> None:
    study = api_site.catalogue.studies[BREAST][0]
    series = api_site.catalogue.series[BREAST][0]
    sop = make_uid(series, 1)
    limited = api_site.catalogue.series[BREAST] + api_site.catalogue.studies[BREAST]
    listing = [
        ("/studies", {}),
        ("/series", {}),
        ("/instances", {"limit": "1000"}),
        ("/studies", {"PatientID": "BREAST-001"}),
        ("/series", {"Modality": "MG"}),
        ("/series", {"StudyInstanceUID": study}),
        ("/instances", {"SeriesInstanceUID": series}),
        (f"/studies/{study}/series", {}),
        (f"/studies/{study}/instances", {}),
        (f"/studies/{study}/series/{series}/instances", {}),
    ]
    hidden = [
        f"/studies/{study}",
        f"/studies/{study}/metadata",
        f"/studies/{study}/series/{series}",
        f"/studies/{study}/series/{series}/metadata",
        f"/studies/{study}/series/{series}/instances/{sop}",
        f"/studies/{study}/series/{series}/instances/{sop}/metadata",
        f"/studies/{study}/series/{series}/instances/{sop}/frames/1",
        f"/studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010",
    ]
    with ExitStack() as stack:
        clients = [
            stack.enter_context(closing(httpx.Client(base_url=f"{api_site.url}/dicomweb"))),
            stack.enter_context(closing(api_site.login("bob"))),
        ]
        for client in clients:
            prefix = "" if str(client.base_url).rstrip("/").endswith("/dicomweb") else "/dicomweb"
            for path, params in listing:
                answer = client.get(prefix + path, params=params)
                assert answer.status_code in (200, 204), path
                assert [w for w in SECRETS if w in answer.text] == [], path
                assert [u for u in limited if u in answer.text] == [], path
                if (params and "limit" not in params) or path.startswith("/studies/"):
                    assert answer.status_code == 204, (path, params)  # as if it did not exist
                    assert answer.content == b"", (path, params)
            for path in hidden:
                answer = client.get(prefix + path)
                assert answer.status_code == 404, path
                text = answer.text.replace(study, "").replace(series, "").replace(sop, "")
                assert [w for w in SECRETS if w in text] == [], path
                assert [u for u in limited if u in text] == [], path
