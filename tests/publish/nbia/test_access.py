"""Limited collections on every NBIA route: strangers get no name, count or UID.

Strangers are the anonymous guest, ``Bearer undefined``, the guest's OAuth
token, and ``bob`` (an account without a grant) by session cookie and by
OAuth token.  ``alice`` (granted the limited collection) sees it through an
OAuth token from the password grant and through her API token.
"""

from __future__ import annotations

from contextlib import ExitStack, closing

import httpx
import pytest

from dicomhub.publish.nbia import auth
from tests.fixtures.public_data import BREAST, make_uid
from tests.publish.conftest import PASSWORDS, PublicSite

V4 = "/nbia-api/services/v4"
SERVLET = "/nbia-download/servlet"
SECRETS = (BREAST, "HOLOGIC", "Selenia", "MG", "BREAST-0", "Breast MG", "breast-mg")
DOI = "https://doi.org/10.0000/dicomhub.breast-mg-limited"


def _token(site: PublicSite, username: str, password: str) -> str:
    answer = httpx.post(
        f"{site.url}/nbia-api/oauth/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": "NBIA",
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _strangers(site: PublicSite) -> list[httpx.Client]:
    bob_token = _token(site, "bob", PASSWORDS["bob"])
    guest_token = _token(site, "nbia_guest", "")
    return [
        site.client(),
        site.client(headers={"Authorization": "Bearer undefined"}),
        site.client(headers={"Authorization": f"Bearer {guest_token}"}),
        site.client(headers={"Authorization": f"Bearer {bob_token}"}),
        site.login("bob"),
    ]


def _requests(site: PublicSite) -> list[tuple[str, str, dict[str, str]]]:
    series = site.catalogue.series[BREAST][0]
    study = site.catalogue.studies[BREAST][0]
    patient = site.catalogue.patients[BREAST][0]
    sop = make_uid(series, 1)
    return [
        ("GET", f"{V4}/getCollectionValues", {}),
        ("GET", f"{V4}/getModalityValues", {}),
        ("GET", f"{V4}/getModalityValues", {"Collection": BREAST}),
        ("GET", f"{V4}/getBodyPartValues", {"Collection": BREAST}),
        ("GET", f"{V4}/getBodyPartValues", {}),
        ("GET", f"{V4}/getManufacturerValues", {}),
        ("GET", f"{V4}/getManufacturerValues", {"Modality": "MG"}),
        ("GET", f"{V4}/getCollectionValuesAndCounts", {}),
        ("GET", f"{V4}/getModalityValuesAndCounts", {}),
        ("GET", f"{V4}/getModalityValuesAndCounts", {"Collection": BREAST}),
        ("GET", f"{V4}/getBodyPartValuesAndCounts", {"Modality": "MG"}),
        ("GET", f"{V4}/getManufacturerValuesAndCounts", {}),
        ("GET", f"{V4}/getCollectionDescriptions", {}),
        ("GET", f"{V4}/getCollectionDescriptions", {"collectionName": BREAST}),
        ("GET", f"{V4}/getPatient", {}),
        ("GET", f"{V4}/getPatient", {"Collection": BREAST}),
        ("GET", f"{V4}/NewPatientsInCollection", {"Collection": BREAST, "fromDate": "01-01-2000"}),
        (
            "GET",
            f"{V4}/getPatientByCollectionAndModality",
            {"Collection": BREAST, "Modality": "MG"},
        ),
        ("GET", f"{V4}/getPatientStudy", {}),
        ("GET", f"{V4}/getPatientStudy", {"Collection": BREAST, "PatientID": patient}),
        ("GET", f"{V4}/getPatientStudy", {"StudyInstanceUID": study}),
        (
            "GET",
            f"{V4}/NewStudiesInPatientCollection",
            {"Collection": BREAST, "fromDate": "01-01-2000"},
        ),
        ("GET", f"{V4}/getSeries", {}),
        ("GET", f"{V4}/getSeries", {"Collection": BREAST}),
        ("GET", f"{V4}/getSeries", {"SeriesInstanceUID": series}),
        ("GET", f"{V4}/getSeries", {"Modality": "MG"}),
        ("GET", f"{V4}/getUpdatedSeries", {"fromDate": "01-01-2000"}),
        ("GET", f"{V4}/getSeriesSize", {"SeriesInstanceUID": series}),
        ("GET", f"{V4}/getSOPInstanceUIDs", {"SeriesInstanceUID": series}),
        ("GET", f"{V4}/getDicomTags", {"SeriesUID": series}),
        ("POST", f"{V4}/getSeriesMetadata", {"list": series}),
        ("POST", f"{V4}/getSimpleSearch", {"size": "100"}),
        (
            "POST",
            f"{V4}/getSimpleSearch",
            {"criteriaType0": "CollectionCriteria", "value0": BREAST},
        ),
        ("POST", f"{V4}/getManifestForSimpleSearch", {"size": "1000000"}),
        ("POST", f"{V4}/getCollectionOrSeriesForDOI", {"DOI": DOI, "CollectionOrSeries": "series"}),
        ("GET", "/nbia-api/services/v1/getSeriesMetaData", {"SeriesInstanceUID": series}),
        # Refused outright (404 or 204), never served:
        ("GET", f"{V4}/getImage", {"SeriesInstanceUID": series, "NewFileNames": "Yes"}),
        ("GET", f"{V4}/getImageWithMD5Hash", {"SeriesInstanceUID": series}),
        ("GET", f"{V4}/getSingleImage", {"SeriesInstanceUID": series, "SOPInstanceUID": sop}),
        ("GET", "/nbia-api/services/v1/getImage", {"SeriesInstanceUID": series}),
        # The Data Retrievers' routes: the CLI's and the GUI's download servlet.
        ("GET", "/nbia-api/services/v1/getDCMImage", {"SeriesInstanceUID": series}),
        ("GET", "/nbia-api/services/v1/getDeniedSeries", {"seriesList": series}),
        ("POST", f"{SERVLET}/DownloadServletV4", {"numberOfSeries": "1", "series1": series}),
        ("POST", f"{SERVLET}/DownloadServletV4", {"seriesUid": series, "newFileNames": "Yes"}),
    ]


def _send(client: httpx.Client, method: str, path: str, params: dict[str, str]) -> httpx.Response:
    if method == "POST":
        return client.post(path, data=params)
    return client.get(path, params=params)


def test_strangers_see_no_trace_on_any_nbia_route(api_site: PublicSite) -> None:
    limited = api_site.catalogue.all_series(BREAST) + api_site.catalogue.studies[BREAST]
    with ExitStack() as stack:
        clients = [stack.enter_context(closing(c)) for c in _strangers(api_site)]
        for client in clients:
            for method, path, params in _requests(api_site):
                answer = _send(client, method, path, params)
                refusals = (403, 460) if path.startswith(SERVLET) else (200, 204, 404)
                assert answer.status_code in refusals, (path, params, answer.text)
                if path.endswith(("getImage", "getImageWithMD5Hash", "getSingleImage", "DCMImage")):
                    assert answer.status_code == 404, (path, answer.status_code)
                text = answer.text
                for sent in params.values():
                    text = text.replace(sent, "")  # a 404 may repeat what was asked
                leaks = [w for w in SECRETS if w in text] + [u for u in limited if u in text]
                assert leaks == [], (path, params, leaks)


def test_v2_needs_a_token_and_honours_the_guests(api_site: PublicSite) -> None:
    series = api_site.catalogue.series[BREAST][0]
    public = api_site.catalogue.all_series("LUNG-CT-DEMO")[0]
    with api_site.client() as anonymous:
        answer = anonymous.get(
            "/nbia-api/services/v2/getImageWithMD5Hash", params={"SeriesInstanceUID": public}
        )
        assert answer.status_code == 401
    guest = _token(api_site, "nbia_guest", "anything")
    with api_site.client(headers={"Authorization": f"Bearer {guest}"}) as client:
        ok = client.get(
            "/nbia-api/services/v2/getImageWithMD5Hash", params={"SeriesInstanceUID": public}
        )
        assert ok.status_code == 200
        assert ok.headers["content-type"] == "application/zip"
        hidden = client.get(
            "/nbia-api/services/v2/getSeriesMetaData", params={"SeriesInstanceUID": series}
        )
        assert hidden.status_code == 204
        shown = client.get(
            "/nbia-api/services/v2/getSeriesMetaData", params={"SeriesInstanceUID": public}
        )
        assert shown.text.splitlines()[0].startswith("Series UID,Collection,3rd Party Analysis")


@pytest.mark.parametrize("how", ["oauth", "api-token", "refreshed"])
def test_alice_sees_her_limited_collection(api_site: PublicSite, how: str) -> None:
    if how == "api-token":
        token = api_site.alice_token
    else:
        token = _token(api_site, "alice", PASSWORDS["alice"])
    if how == "refreshed":
        first = httpx.post(
            f"{api_site.url}/nbia-api/oauth/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]},
        ).json()
        again = httpx.post(
            f"{api_site.url}/nbia-api/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
        assert again.status_code == 200
        token = again.json()["access_token"]
    series = api_site.catalogue.series[BREAST]
    with api_site.client(headers={"Authorization": f"Bearer {token}"}) as client:
        names = client.get(f"{V4}/getCollectionValues").json()
        assert {"Collection": BREAST} in names
        found = client.get(f"{V4}/getSeries", params={"Collection": BREAST}).json()
        assert sorted(row["SeriesInstanceUID"] for row in found) == sorted(series)
        image = client.get(f"{V4}/getImage", params={"SeriesInstanceUID": series[0]})
        assert image.status_code == 200
        v2 = client.get(
            "/nbia-api/services/v2/getImageWithMD5Hash", params={"SeriesInstanceUID": series[0]}
        )
        assert v2.status_code == 200


def test_bad_tokens_are_401_never_guest(api_site: PublicSite) -> None:
    secret = "s" * 32
    expired = auth.sign(secret, auth.Claims(None, "access", 1, "x"))
    forged = auth.sign("another secret key!", auth.Claims(None, "access", 2**40, "x"))
    good = _token(api_site, "alice", PASSWORDS["alice"])
    payload = good.split(".")
    ending = "AA" if not payload[1].endswith("AA") else "BB"
    tampered = ".".join([payload[0], payload[1][:-2] + ending, payload[2]])
    refresh = httpx.post(
        f"{api_site.url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]},
    ).json()["refresh_token"]
    for token in (expired, forged, tampered, refresh, "nbia.garbage", "dh_000000000000_nope"):
        with api_site.client(headers={"Authorization": f"Bearer {token}"}) as client:
            answer = client.get(f"{V4}/getCollectionValues")
            assert answer.status_code == 401, token
            assert answer.headers["www-authenticate"] == "Bearer"
            assert client.get("/dicomweb/studies").status_code == 401


def test_token_endpoint_refuses_bad_grants(api_site: PublicSite) -> None:
    url = f"{api_site.url}/nbia-api/oauth/token"
    wrong = httpx.post(
        url, data={"grant_type": "password", "username": "alice", "password": "x" * 12}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_grant"
    unknown = httpx.post(
        url, data={"grant_type": "password", "username": "nobody", "password": "x"}
    )
    assert unknown.status_code == 401
    assert httpx.post(url, data={"grant_type": "client_credentials"}).status_code == 400
    assert httpx.post(url, data={"grant_type": "password", "bogus": "1"}).status_code == 400
    assert (
        httpx.post(url, data={"grant_type": "refresh_token", "refresh_token": "x"}).status_code
        == 401
    )
    body = httpx.post(
        url, data={"grant_type": "password", "username": "nbia_guest", "password": ""}
    ).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert {"access_token", "refresh_token", "id_token", "refresh_expires_in"} <= set(body)
