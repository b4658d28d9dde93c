"""The public site in chromium: search with facets, add to basket, export, collection page."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.public_data import LUNG
from tests.fixtures.services import CHROMIUM_ARGS
from tests.publish.conftest import PublicSite
from tests.publish.test_basket import manifest_to_list


@pytest.mark.browser
@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_search_basket_manifest_and_collection_page(
    public_site: PublicSite, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.goto(f"{public_site.url}/search")
            expect(page.locator("#total")).to_have_text("25")

            # a facet click refreshes the results through htmx, without a page load
            page.locator("#facet-modality input[value='CT']").check()
            expect(page.locator("#total")).to_have_text("16")
            assert "modality=CT" in page.url
            page.fill("input[name='description']", "lung")
            page.press("input[name='description']", "Enter")
            expect(page.locator("#total")).to_have_text("8")

            first = page.locator("#results-table tbody tr").first
            uid = first.get_attribute("data-series-uid")
            assert uid in public_site.catalogue.series[LUNG]
            first.locator("button.add-series").click()
            expect(page.locator("#basket-badge .count")).to_have_text("1")

            page.click("#basket-badge")
            expect(page.locator("#basket-series")).to_have_text("1")
            with page.expect_download() as waiting:
                page.click("#export-manifest")
            download = waiting.value
            assert download.suggested_filename.endswith(".tcia")
            saved = tmp_path / "from-browser.tcia"
            download.save_as(saved)
            assert manifest_to_list(saved.read_text(), tmp_path) == [uid]

            page.goto(f"{public_site.url}/collections")
            page.click(f"text={LUNG}")
            expect(page.locator("#collection-name")).to_have_text(LUNG)
            expect(page.locator("#by-modality")).to_contain_text("CT")
            expect(page.locator(".citation")).to_contain_text("Lung CT demo collection")
        finally:
            browser.close()
