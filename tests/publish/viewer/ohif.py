"""The OHIF viewer as its npm package ships it built, served as a static site.

``@ohif/app`` publishes its production build in ``dist/``; the only file a
deployment replaces is ``app-config.js``, which here points OHIF's DICOMweb
data source at a dicomhub host.  Every other path is a file of the build, or
``index.html`` for the viewer's client-side routes (what ``serve.json`` in the
build asks of a static host).
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.publish.viewer.npm import Pinned

#: The OHIF release the test runs, with the integrity string npm publishes for it.
OHIF_APP = Pinned(
    "@ohif/app",
    "3.13.2",
    "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==",
)

_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript"}


def app_config(dicomweb_root: str) -> str:
    """OHIF's ``window.config`` with one DICOMweb source: the dicomhub host."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomhub",
        "configuration": {
            "friendlyName": "dicomhub",
            "name": "dicomhub",
            "wadoUriRoot": dicomweb_root,
            "qidoRoot": dicomweb_root,
            "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            # as OHIF's own default configuration: bulk data fetched single-part
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": None,
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 1,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "dicomhub",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config)};\n"


def static_viewer(dist: Path, config: dict[str, str]) -> Starlette:
    """A Starlette app serving ``dist``; ``config["js"]`` is served as ``/app-config.js``.

    The config is read per request, so the test can start this server first,
    learn its origin (for the archive's CORS list), then fill in the archive's URL.
    """
    root = dist.resolve()

    async def config_js(request: Request) -> Response:
        return Response(config["js"], media_type="text/javascript")

    async def files(request: Request) -> Response:
        wanted = (root / request.path_params["path"]).resolve()
        if wanted.is_relative_to(root) and wanted.is_file():
            return FileResponse(wanted, media_type=_TYPES.get(wanted.suffix))
        return FileResponse(root / "index.html", media_type="text/html")

    return Starlette(routes=[Route("/app-config.js", config_js), Route("/{path:path}", files)])
