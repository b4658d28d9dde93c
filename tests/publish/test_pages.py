"""The HTML side without a browser: pages, htmx partials, form posts and the login form."""

from __future__ import annotations

from contextlib import closing

from tests.fixtures.public_data import BRAIN, BREAST, LUNG
from tests.publish.conftest import PASSWORDS, PublicSite

HTML = {"accept": "text/html"}


def test_search_page_and_its_htmx_partial(public_site: PublicSite) -> None:
    with public_site.client(headers=HTML) as client:
        page = client.get("/search", params={"modality": "MR"})
        assert page.status_code == 200
        assert '<strong id="total">6</strong>' in page.text
        assert 'hx-get="/search/results"' in page.text
        assert 'name="modality" value="MR" checked' in page.text
        partial = client.get(
            "/search/results", params={"body_part": "CHEST"}, headers={"hx-request": "true"}
        )
        assert partial.status_code == 200
        assert "<html" not in partial.text
        assert '<strong id="total">16</strong>' in partial.text
        assert partial.headers["hx-push-url"] == "/search?body_part=CHEST"
        paged = client.get("/search", params={"limit": 5, "offset": 5})
        assert "« Previous" in paged.text
        assert "Next »" in paged.text
        assert client.get("/search", params={"limit": -1}).status_code == 400
        assert client.get("/search", params={"collection": BREAST}).status_code == 404


def test_collection_pages(public_site: PublicSite) -> None:
    with public_site.client(headers=HTML) as client:
        listing = client.get("/collections")
        assert LUNG in listing.text
        assert BRAIN in listing.text
        page = client.get(f"/collections/{LUNG}")
        assert page.status_code == 200
        assert "Creative Commons Attribution 4.0 International" in page.text
        assert "Lung CT demo collection" in page.text  # citation
        assert 'id="by-modality"' in page.text
        assert "CHEST" in page.text
        missing = client.get("/collections/NOPE")
        assert missing.status_code == 404
        assert "<h1>404</h1>" in missing.text
        home = client.get("/")
        assert f'href="/collections/{LUNG}"' in home.text


def test_basket_by_form_posts_and_htmx(public_site: PublicSite) -> None:
    uid = public_site.catalogue.series[LUNG][0]
    with public_site.client(headers={**HTML, "origin": public_site.url}) as client:
        plain = client.post("/basket/add", data={"kind": "series", "uid": uid})
        assert plain.status_code == 303
        assert plain.headers["location"] == "/basket"
        badge = client.post(
            "/basket/add",
            data={"kind": "search", "collection": BRAIN, "modality": "MR"},
            headers={"hx-request": "true"},
        )
        assert badge.status_code == 200
        assert 'id="basket-badge"' in badge.text
        assert '<span class="count">7</span>' in badge.text
        page = client.get("/basket")
        assert '<strong id="basket-series">7</strong>' in page.text
        assert 'href="/api/basket/manifest.tcia"' in page.text
        assert uid in page.text
        client.post("/basket/remove", data={"uid": uid})
        assert '<strong id="basket-series">6</strong>' in client.get("/basket").text
        client.post("/basket/remove", data={"all": "1"})
        assert "Your basket is empty" in client.get("/basket").text
        bad = client.post("/basket/add", data={"kind": "everything"})
        assert bad.status_code == 400


def test_login_form(public_site: PublicSite) -> None:
    browser = public_site.client(headers={**HTML, "origin": public_site.url})
    with closing(browser):
        failed = browser.post("/login", data={"username": "alice", "password": "nope"})
        assert failed.status_code == 401
        assert 'id="login-failed"' in failed.text
        ok = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
        assert ok.status_code == 303
        assert BREAST in browser.get("/collections").text
        assert browser.get(f"/collections/{BREAST}").status_code == 200
        browser.post("/logout")
        assert BREAST not in browser.get("/collections").text
