"""Shared baskets: NBIA getContentsByName (and tcia_utils getSharedCart), and a basket by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.public_data import BREAST, LUNG
from tests.publish.conftest import PublicSite
from tests.publish.test_basket import manifest_to_list

V1 = "/nbia-api/services/v1"


def _uid_lines(text: str) -> list[str]:
    return text.split("ListOfSeriesToDownload=\n", 1)[1].split()


def _tcia_shared_cart(site: PublicSite, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """tcia_utils' own getSharedCart, pointed at the archive (the documented in-process hook)."""
    from tcia_utils import nbia

    base = f"{site.url}/nbia-api/services"

    def set_api_url(endpoint: str, api_url: str = "") -> str:
        return f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"

    monkeypatch.setattr(nbia, "setApiUrl", set_api_url)
    return nbia.getSharedCart(name)


def test_share_read_back_and_reach_by_id(
    public_site: PublicSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = public_site.catalogue
    lung, breast = cat.series[LUNG][:3], cat.series[BREAST][:2]
    alice = public_site.login("alice")
    bob = public_site.login("bob")
    guest = public_site.client()
    bearer = {"Authorization": f"Bearer {public_site.alice_token}"}
    try:
        assert alice.get("/api/basket").json()["id"] is None
        assert alice.post("/api/basket/series", json={"uids": lung + breast}).status_code == 200
        mine = alice.get("/api/basket").json()
        ident = mine["id"]
        assert isinstance(ident, int)
        assert (mine["series"], mine["shared_name"]) == (5, None)
        by_id = f"/api/baskets/{ident}/manifest.tcia"

        # Before sharing: the owner (cookie or API token) gets it, nobody else can tell it exists.
        own = alice.get(by_id)
        assert own.status_code == 200, own.text
        assert sorted(_uid_lines(own.text)) == sorted(lung + breast)
        assert _uid_lines(own.text) == _uid_lines(alice.get("/api/basket/manifest.tcia").text)
        with httpx.Client(base_url=public_site.url, headers=bearer) as downloader:
            token_copy = downloader.get(by_id)
        assert token_copy.status_code == 200, token_copy.text
        assert sorted(manifest_to_list(token_copy.text, tmp_path)) == sorted(lung + breast)
        for stranger in (guest, bob):
            answer = stranger.get(by_id)
            assert answer.status_code == 404
            unknown = stranger.get("/api/baskets/999999/manifest.tcia").json()
            expected = unknown["message"].replace("999999", str(ident))
            assert answer.json()["message"] == expected
        assert guest.get(f"{V1}/getContentsByName", params={"name": "alice-cart"}).content == b""

        # Sharing: guests may not, names are checked, a taken name is a conflict.
        assert guest.post("/api/basket/share", json={"name": "x1"}).status_code == 401
        for bad in ("", "../etc", "a b", "-lead", "x" * 65, "cart;drop", "ü"):
            answer = alice.post("/api/basket/share", json={"name": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["message"], bad
        shared = alice.post("/api/basket/share", json={"name": "alice-cart"})
        assert shared.json() == {"id": ident, "shared_name": "alice-cart"}
        assert alice.get("/api/basket").json()["shared_name"] == "alice-cart"
        bob.post("/api/basket/series", json={"uids": lung[:1]})
        taken = bob.post("/api/basket/share", json={"name": "alice-cart"})
        assert taken.status_code == 409
        assert "taken" in taken.json()["message"]

        # Read back as NBIA's v1 shape: the guest sees the public series only.
        answer = guest.get(f"{V1}/getContentsByName", params={"name": "alice-cart"})
        assert answer.status_code == 200
        rows = answer.json()
        assert sorted(r["SeriesInstanceUID"] for r in rows) == sorted(lung)
        assert {r["Collection"] for r in rows} == {LUNG}
        assert rows[0]["Date Released"].endswith(" 00:00:00.0")
        assert "AnnotationsFlag" not in rows[0]  # nulls are left out, as NBIA does
        assert BREAST not in answer.text
        assert breast[0] not in answer.text
        cart = _tcia_shared_cart(public_site, "alice-cart", monkeypatch)
        assert sorted(r["SeriesInstanceUID"] for r in cart) == sorted(lung)

        # Shared by id: a stranger gets the series they may see, the owner all of them.
        assert sorted(_uid_lines(guest.get(by_id).text)) == sorted(lung)
        assert sorted(_uid_lines(bob.get(by_id).text)) == sorted(lung)
        assert sorted(_uid_lines(alice.get(by_id).text)) == sorted(lung + breast)

        # Unknown, missing or odd names; bad ids.
        for name in ("nobody", "../../etc/passwd", "' OR 1=1 --"):
            answer = guest.get(f"{V1}/getContentsByName", params={"name": name})
            assert (answer.status_code, answer.content) == (200, b""), name
        assert guest.get(f"{V1}/getContentsByName").status_code == 400
        too_long = guest.get(f"{V1}/getContentsByName", params={"name": "x" * 300})
        assert too_long.status_code == 400
        assert too_long.json()["message"]
        for bad in ("abc", "0", "-1", "1.5", "9" * 20):
            answer = guest.get(f"/api/baskets/{bad}/manifest.tcia")
            assert answer.status_code == 400, bad
            assert "basket id" in answer.json()["message"]

        # Unsharing hides it again.
        assert alice.delete("/api/basket/share").json() == {"shared_name": None}
        assert guest.get(by_id).status_code == 404
        assert guest.get(f"{V1}/getContentsByName", params={"name": "alice-cart"}).content == b""
    finally:
        for client in (alice, bob, guest):
            client.close()
