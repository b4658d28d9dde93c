"""Limited collections, per route: a stranger gets 401/403/404 and never a name, count or UID.

Three callers: the anonymous guest, ``bob`` (logged in, no grant) and
``alice`` (granted ``user`` on the limited collection, by login or by token).
"""

from __future__ import annotations

from contextlib import closing

import httpx

from dicomhub.core.auth import revoke_role
from dicomhub.core.auth.users import get_user
from dicomhub.core.db import session_scope
from tests.fixtures.public_data import BREAST, LUNG
from tests.publish.conftest import PublicSite

SECRETS = (BREAST, "HOLOGIC", "Selenia", "MG", "BREAST-0", "Breast MG")


def _leaks(text: str, uids: list[str]) -> list[str]:
    found = [word for word in SECRETS if word in text]
    return found + [uid for uid in uids if uid in text]


def _strangers(site: PublicSite) -> list[httpx.Client]:
    return [site.client(), site.login("bob")]


def test_strangers_see_no_trace_of_a_limited_collection(public_site: PublicSite) -> None:
    limited = public_site.catalogue.series[BREAST]
    study = public_site.catalogue.studies[BREAST][0]
    html = {"accept": "text/html"}
    for client in _strangers(public_site):
        with closing(client):
            listing = [
                client.get("/api/collections"),
                client.get("/api/search", params={"limit": 1000, "facets": "1"}),
                client.get("/api/facets"),
                client.get("/api/search", params={"modality": "MG"}),
                client.get("/api/search", params={"manufacturer": "HOLOGIC", "facets": "1"}),
                client.get("/api/search/manifest.tcia"),
                client.get("/collections", headers=html),
                client.get("/search", headers=html),
                client.get("/search/results", params={"modality": "MG"}, headers=html),
                client.get("/", headers=html),
            ]
            for answer in listing:
                assert answer.status_code == 200, answer.request.url
                assert _leaks(answer.text, limited) == [], answer.request.url
            assert client.get("/api/search", params={"modality": "MG"}).json()["total"] == 0
            hidden = [
                client.get(f"/api/collections/{BREAST}"),
                client.get(f"/collections/{BREAST}", headers=html),
                client.get(f"/api/series/{limited[0]}"),
                client.get("/api/search", params={"collection": BREAST}),
                client.get("/api/facets", params={"collection": BREAST}),
                client.get("/api/search/manifest.tcia", params={"collection": BREAST}),
                client.post("/api/manifest", json={"uids": limited[:1]}),
                client.post("/api/basket/series", json={"uids": limited[:1]}),
                client.post("/api/basket/studies", json={"uids": [study]}),
                client.post(
                    "/api/basket/patients",
                    json={"collection": BREAST, "patient_ids": ["BREAST-001"]},
                ),
                client.post("/api/basket/search", params={"collection": BREAST}),
            ]
            for answer in hidden:
                assert answer.status_code == 404, (answer.request.url, answer.text)
                assert "HOLOGIC" not in answer.text
            # the same message as for a collection that does not exist at all
            unknown = client.get("/api/collections/NO-SUCH")
            assert client.get(f"/api/collections/{BREAST}").json()["message"] == unknown.json()[
                "message"
            ].replace("NO-SUCH", BREAST)
            # nothing from the limited collection slipped into the basket
            assert client.get("/api/basket").json()["series"] == 0


def test_a_search_by_modality_of_a_limited_collection_adds_nothing(public_site: PublicSite) -> None:
    with public_site.client() as guest:
        added = guest.post("/api/basket/search", params={"modality": "MG"})
        assert added.status_code == 200
        assert added.json()["added"] == 0


def test_granted_user_sees_the_limited_collection(public_site: PublicSite) -> None:
    limited = public_site.catalogue.series[BREAST]
    by_login = public_site.login("alice")
    by_token = public_site.client(headers={"authorization": f"Bearer {public_site.alice_token}"})
    for client in (by_login, by_token):
        with closing(client):
            names = [c["name"] for c in client.get("/api/collections").json()]
            assert BREAST in names
            detail = client.get(f"/api/collections/{BREAST}").json()
            assert detail["series"] == len(limited) == 4
            assert detail["by_modality"][0]["value"] == "MG"
            body = client.get("/api/search", params={"limit": 1000, "facets": "1"}).json()
            assert body["total"] == 29
            modalities = {f["value"]: f["count"] for f in body["facets"]["modality"]}
            assert modalities["MG"] == 4
            assert client.get(f"/api/series/{limited[0]}").status_code == 200
            page = client.get(f"/collections/{BREAST}", headers={"accept": "text/html"})
            assert page.status_code == 200
            assert "Breast MG limited collection" in page.text
            assert client.get("/api/me").json()["username"] == "alice"


def test_bad_credentials_are_401(public_site: PublicSite) -> None:
    with public_site.client() as client:
        for header in (
            "Bearer dh_0000000000000000_forged",
            "Bearer not-a-token",
            "Basic YWxpY2U6eA==",
            public_site.alice_token,  # no scheme
        ):
            answer = client.get("/api/search", headers={"authorization": header})
            assert answer.status_code == 401, header
            assert answer.headers["www-authenticate"] == "Bearer"
        forged = public_site.alice_token[:-4] + "AAAA"
        answer = client.get(
            f"/api/collections/{BREAST}", headers={"authorization": f"Bearer {forged}"}
        )
        assert answer.status_code == 401
        assert BREAST not in answer.text
        wrong = client.post("/api/login", json={"username": "alice", "password": "wrong-password"})
        assert wrong.status_code == 401
        assert (
            client.post("/api/login", json={"username": "nobody", "password": "x"}).status_code
            == 401
        )
        assert client.get("/api/me").json()["anonymous"] is True


def test_cross_site_posts_with_a_cookie_are_refused(public_site: PublicSite) -> None:
    uid = public_site.catalogue.series[LUNG][0]
    with closing(public_site.login("alice")) as client:
        evil = client.post(
            "/api/basket/series", json={"uids": [uid]}, headers={"origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        same = client.post(
            "/api/basket/series", json={"uids": [uid]}, headers={"origin": public_site.url}
        )
        assert same.status_code == 200


def test_withdrawn_access_blocks_exports_until_hidden_series_are_removed(
    public_site: PublicSite,
) -> None:
    limited = public_site.catalogue.series[BREAST]
    lung = public_site.catalogue.series[LUNG]
    with closing(public_site.login("alice")) as alice:
        assert (
            alice.post("/api/basket/series", json={"uids": limited + lung[:2]}).status_code == 200
        )
        assert alice.get("/api/basket").json()["series"] == 6
        with session_scope(public_site.context.db.sessions) as session:
            user = get_user(session, "alice")
            revoke_role(session, user, "user", actor="test", origin="test", collection=BREAST)
        summary = alice.get("/api/basket").json()
        assert summary["series"] == 2
        assert summary["hidden"] == 4
        for path in (
            "/api/basket/manifest.tcia",
            "/api/basket/series.csv",
            "/api/basket/download.zip",
        ):
            answer = alice.get(path)
            assert answer.status_code == 403, path
            assert _leaks(answer.text, limited) == []
        items = alice.get("/api/basket/items").json()["results"]
        assert {r["series_uid"] for r in items} == set(lung[:2])
        html = {"accept": "text/html", "origin": public_site.url}
        alice.post("/basket/remove", data={"hidden": "1"}, headers=html)
        assert alice.get("/api/basket").json()["hidden"] == 0
        assert alice.get("/api/basket/manifest.tcia").status_code == 200
