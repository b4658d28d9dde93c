"""Releases served publicly: the listing and each release manifest, within the caller's access."""

from __future__ import annotations

import hashlib
import json

from dicomhub.core.db import Release, ReleaseState, session_scope, utcnow
from tests.fixtures.public_data import BREAST, LUNG
from tests.publish.conftest import PublicSite


def _release(site: PublicSite, collection: str, state: ReleaseState) -> tuple[int, bytes]:
    """A release row and its manifest in the public store, as promotion leaves them."""
    with session_scope(site.context.db.sessions) as session:
        release = Release(
            collection=collection,
            state=state.value,
            plan_digest="a" * 64,
            recipe_hash="b" * 64,
            recipe={},
            series_selection=[],
            created_by="curator",
            patients=1,
            studies=1,
            series=2,
            instances=6,
            total_size=6000,
        )
        session.add(release)
        session.flush()
        number = release.id
        manifest = json.dumps({"release": number, "collection": collection}).encode()
        key = f"releases/{number:08d}/manifest.json"
        site.context.store.put(key, manifest)
        if state is ReleaseState.PUBLISHED:
            release.published_at = utcnow()
            release.manifest_key = key
            release.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
    return number, manifest


def test_releases_listed_and_served_within_access(public_site: PublicSite) -> None:
    lung, lung_manifest = _release(public_site, LUNG, ReleaseState.PUBLISHED)
    breast, breast_manifest = _release(public_site, BREAST, ReleaseState.PUBLISHED)
    staging, _ = _release(public_site, LUNG, ReleaseState.STAGING)
    guest, bob, alice = public_site.client(), public_site.login("bob"), public_site.login("alice")
    try:
        for stranger in (guest, bob):
            listed = stranger.get("/api/releases")
            assert listed.status_code == 200
            assert [r["number"] for r in listed.json()] == [lung]
            assert BREAST not in listed.text
            answer = stranger.get(f"/api/releases/{breast}/manifest.json")
            assert answer.status_code == 404
            assert BREAST not in answer.text
            hidden = stranger.get("/api/releases", params={"collection": BREAST})
            unknown = stranger.get("/api/releases", params={"collection": "NO-SUCH"})
            assert hidden.status_code == unknown.status_code == 404
            assert hidden.json()["message"].replace(BREAST, "X") == unknown.json()[
                "message"
            ].replace("NO-SUCH", "X")
        first = guest.get("/api/releases").json()[0]
        assert first["collection"] == LUNG
        assert (first["series"], first["instances"], first["size"]) == (2, 6, 6000)
        assert first["manifest"] == f"/api/releases/{lung}/manifest.json"
        served = guest.get(first["manifest"])
        assert served.status_code == 200
        assert served.content == lung_manifest
        assert hashlib.sha256(served.content).hexdigest() == first["manifest_sha256"]
        assert served.headers["content-length"] == str(len(lung_manifest))

        mine = alice.get("/api/releases").json()
        assert [r["number"] for r in mine] == [lung, breast]
        only = alice.get("/api/releases", params={"collection": BREAST}).json()
        assert [r["number"] for r in only] == [breast]
        assert alice.get(f"/api/releases/{breast}/manifest.json").content == breast_manifest

        assert guest.get(f"/api/releases/{staging}/manifest.json").status_code == 404
        assert guest.get("/api/releases/99999/manifest.json").status_code == 404
        for bad in ("abc", "0", "-3", "../../etc", "1e3"):
            answer = guest.get(f"/api/releases/{bad}/manifest.json")
            assert answer.status_code in (400, 404), bad
            if answer.status_code == 400:
                assert "release number" in answer.json()["message"]
        for bad in ("x" * 200, "bad\x01name"):
            assert guest.get("/api/releases", params={"collection": bad}).status_code == 400
    finally:
        for client in (guest, bob, alice):
            client.close()
