"""The OHIF viewer, as published on npm, opens a study from dicomhub's DICOMweb in chromium.

OHIF is served from its own origin, as a deployment would host it, so the
archive's CORS setting is exercised too.  The test follows the calls OHIF
makes (QIDO-RS for the study's series, WADO-RS metadata, then frames) and
asserts that the first image is drawn on the viewport's canvas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from tests.fixtures.http import serve_app
from tests.fixtures.services import CHROMIUM_ARGS, unavailable
from tests.publish.viewer.catalogue import ViewerStudy, served_archive, sqlite_copy
from tests.publish.viewer.npm import FetchFailed, unpacked
from tests.publish.viewer.ohif import OHIF_APP, app_config, static_viewer

#: How much of the viewport must be drawn (not background) to count as an image.
MIN_DRAWN = 0.05

#: Reads the viewport canvas through a 2D copy (whatever context it renders with) and
#: returns the share of pixels that are not black, and how many grey levels appear.
_DRAWN = """(canvas) => {
  const copy = document.createElement('canvas');
  copy.width = canvas.width; copy.height = canvas.height;
  const ctx = copy.getContext('2d');
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
  let lit = 0; const levels = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] + data[i + 1] + data[i + 2] > 30) lit += 1;
    levels.add(data[i]);
  }
  return {lit: lit / (data.length / 4), levels: levels.size,
          width: copy.width, height: copy.height};
}"""


@dataclass
class ViewerSite:
    viewer_url: str
    archive_url: str
    study: ViewerStudy


@pytest.fixture(scope="module")
def viewer_site(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[ViewerSite]:
    """OHIF on one origin, dicomhub (SQLite) on another, CORS open to the first."""
    try:
        dist = unpacked(OHIF_APP)
    except FetchFailed as exc:
        unavailable(f"the OHIF build could not be fetched: {exc}")
    folder = tmp_path_factory.mktemp("viewer")
    db_url = sqlite_copy(sqlite_template, folder)
    syntaxes = [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless]
    config = {"js": ""}
    with (
        serve_app(static_viewer(dist, config)) as viewer_url,
        served_archive(folder, db_url, syntaxes, [viewer_url]) as (archive_url, study),
    ):
        config["js"] = app_config(f"{archive_url}/dicomweb")
        yield ViewerSite(viewer_url, archive_url, study)


def _note_failure(failures: list[str], status: int, url: str) -> None:
    if status >= 400:
        failures.append(f"{status} {url}")


def _is_series_search(url: str, archive: str, study: str) -> bool:
    return url.split("?")[0] in (f"{archive}/studies", f"{archive}/studies/{study}/series")


@pytest.mark.browser
def test_ohif_renders_the_first_image(viewer_site: ViewerSite, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    failures: list[str] = []
    study = viewer_site.study.study_uid
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("request", lambda r: requests.append(r.url))
            page.on("response", lambda r: _note_failure(failures, r.status, r.url))
            page.goto(f"{viewer_site.viewer_url}/viewer?StudyInstanceUIDs={study}")
            canvas = page.locator("canvas.cornerstone-canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            page.wait_for_function(
                "() => { const c = document.querySelector('canvas.cornerstone-canvas');"
                f" return c && ({_DRAWN})(c).lit > {MIN_DRAWN}; }}",
                timeout=60_000,
            )
            drawn = canvas.evaluate(_DRAWN)
        finally:
            browser.close()

    # the phantom, not a blank or a flat canvas: a disc among black, in many grey levels
    assert MIN_DRAWN < drawn["lit"] < 0.95, drawn
    assert drawn["levels"] > 8, drawn
    # OHIF reached the archive across origins (CORS) with QIDO, metadata and frame calls
    archive = f"{viewer_site.archive_url}/dicomweb"
    assert not failures
    assert any(_is_series_search(url, archive, study) for url in requests), requests
    series = viewer_site.study.series_uid
    assert f"{archive}/studies/{study}/series/{series}/metadata" in requests
    framed = {url.split("/instances/")[1].split("/")[0] for url in requests if "/frames/" in url}
    assert framed <= set(viewer_site.study.sop_uids)
    assert framed, requests
