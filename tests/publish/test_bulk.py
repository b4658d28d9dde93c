"""The bulk download API: listings, single files and the multi-series tar, per caller.

A limited collection stays invisible to strangers (guest, a logged-in user
without a grant, a bad credential) on every route; its holder reaches it with
a dicomhub API token, a login, or an NBIA OAuth token.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from contextlib import closing

import httpx

from tests.fixtures.public_data import BREAST, LUNG
from tests.publish.conftest import PASSWORDS, PublicSite


def _oauth_token(site: PublicSite, username: str) -> str:
    answer = httpx.post(
        f"{site.url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORDS[username],
              "client_id": "nbia"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        out = {}
        for member in archive:
            handle = archive.extractfile(member)
            assert handle is not None
            out[member.name] = handle.read()
        return out


def test_probe_files_file_and_stream_agree(public_site: PublicSite) -> None:
    uids = public_site.catalogue.series[LUNG][:3]
    with public_site.client() as client:
        probe = client.get("/api/download").json()
        assert probe["protocol"] == "dicomhub-bulk/1"
        listing = client.post("/api/download/files", json={"series": [*uids, uids[0]]}).json()
        assert listing["series"] == 3
        files = listing["files"]
        assert [f["series_uid"] for f in files] == sorted(
            (f["series_uid"] for f in files), key=uids.index
        )
        for row in files:
            answer = client.get(f"/api/download/file/{row['sop_instance_uid']}")
            assert answer.status_code == 200
            assert hashlib.sha256(answer.content).hexdigest() == row["sha256"]
            assert hashlib.md5(answer.content, usedforsecurity=False).hexdigest() == row["md5"]
            assert len(answer.content) == row["size"]
            assert answer.headers["x-checksum-sha256"] == row["sha256"]
        streamed = client.post("/api/download/stream", json={"series": uids})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"] == "application/x-tar"
        members = _untar(streamed.content)
    for uid in uids:
        index = list(csv.DictReader(io.StringIO(members[f"{uid}/index.csv"].decode())))
        expected = [f for f in files if f["series_uid"] == uid]
        assert [r["sha256"] for r in index] == [f["sha256"] for f in expected]
        assert [r["name"] for r in index] == [f"{n:08d}.dcm" for n in range(1, len(index) + 1)]
        for row in index:
            data = members[f"{uid}/{row['name']}"]
            assert hashlib.sha256(data).hexdigest() == row["sha256"]
            assert str(len(data)) == row["size"]
    assert len(members) == len(files) + len(uids)


def test_strangers_get_nothing_of_a_limited_collection(public_site: PublicSite) -> None:
    limited = public_site.catalogue.series[BREAST]
    public = public_site.catalogue.series[LUNG][:1]
    with closing(
        public_site.client(headers={"authorization": f"Bearer {public_site.alice_token}"})
    ) as alice:
        sops = [f["sop_instance_uid"] for f in alice.post(
            "/api/download/files", json={"series": limited}).json()["files"]]  # fmt: skip
    assert sops
    for client in (public_site.client(), public_site.login("bob")):
        with closing(client):
            listing = client.post("/api/download/files", json={"series": [*limited, *public]})
            assert listing.status_code == 200
            assert listing.json()["series"] == 1
            streamed = client.post("/api/download/stream", json={"series": [*limited, *public]})
            assert streamed.status_code == 200
            for text in (listing.text, streamed.content.decode("latin-1")):
                assert not [u for u in [*limited, *sops] if u in text]
                assert BREAST not in text
            names = set(_untar(streamed.content))
            assert f"{public[0]}/index.csv" in names
            assert all(name.startswith(public[0] + "/") for name in names)
            only = client.post("/api/download/stream", json={"series": limited})
            assert only.status_code == 200
            assert _untar(only.content) == {}
            for sop in sops:
                hidden = client.get(f"/api/download/file/{sop}")
                assert hidden.status_code == 404
                assert sop not in hidden.text
    with public_site.client() as client:
        for header in ("Bearer dh_0000000000000000_forged", "Bearer nbia.e30.AAAA", "Basic eDp5"):
            for answer in (
                client.post("/api/download/files", json={"series": limited},
                            headers={"authorization": header}),
                client.post("/api/download/stream", json={"series": limited},
                            headers={"authorization": header}),
                client.get(f"/api/download/file/{sops[0]}", headers={"authorization": header}),
            ):  # fmt: skip
                assert answer.status_code == 401, (header, answer.request.url)
                assert not [u for u in [*limited, *sops] if u in answer.text]


def test_the_holder_reaches_it_by_api_token_login_or_nbia_token(public_site: PublicSite) -> None:
    limited = public_site.catalogue.series[BREAST]
    clients = [
        public_site.client(headers={"authorization": f"Bearer {public_site.alice_token}"}),
        public_site.login("alice"),
        public_site.client(
            headers={"authorization": f"Bearer {_oauth_token(public_site, 'alice')}"}
        ),
    ]
    for client in clients:
        with closing(client):
            listing = client.post("/api/download/files", json={"series": limited}).json()
            assert listing["series"] == len(limited)
            sop = listing["files"][0]["sop_instance_uid"]
            assert client.get(f"/api/download/file/{sop}").status_code == 200
            members = _untar(client.post("/api/download/stream", json={"series": limited}).content)
            assert {name.split("/")[0] for name in members} == set(limited)
            assert client.get("/api/me").json()["username"] == "alice"
    refresh = httpx.post(
        f"{public_site.url}/nbia-api/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]},
    ).json()["refresh_token"]
    with public_site.client(headers={"authorization": f"Bearer {refresh}"}) as client:
        refused = client.post("/api/download/files", json={"series": limited})
        assert refused.status_code == 401  # only access tokens stand for their owner
        assert "not an access token" in refused.json()["message"]
    bob = _oauth_token(public_site, "bob")
    with public_site.client(headers={"authorization": f"Bearer {bob}"}) as client:
        assert client.post("/api/download/files", json={"series": limited}).json()["series"] == 0


def test_malformed_requests_get_clear_errors(public_site: PublicSite) -> None:
    with public_site.client() as client:
        cases = [
            client.post("/api/download/files", json={"series": []}),
            client.post("/api/download/files", json={"series": ["1.2.3"] * 1001}),
            client.post("/api/download/files", json={"uids": ["1.2.3"]}),
            client.post("/api/download/files", content=b"not json",
                        headers={"content-type": "application/json"}),
            client.post("/api/download/stream", json={"series": "1.2.3"}),
        ]  # fmt: skip
        for answer in cases:
            assert answer.status_code in (400, 422), answer.text
            assert answer.json()["message"]
        bad_uid = client.post("/api/download/stream", json={"series": ["1.2.x"]})
        assert bad_uid.status_code == 400
        assert "malformed SeriesInstanceUID" in bad_uid.json()["message"]
        bad_sop = client.get("/api/download/file/not-a-uid")
        assert bad_sop.status_code == 400
        assert "malformed SOPInstanceUID" in bad_sop.json()["message"]
        assert client.get("/api/download/file/1.2.3.4.5").status_code == 404
