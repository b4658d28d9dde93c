"""NBIA's v1 and v2 routes that clients still call.

* ``v1/getContentsByName`` (tcia_utils' ``getSharedCart``).  The archive has
  no shared carts yet, so a name never matches: an empty body, as NBIA gives
  for an unknown name.
* ``v1|v2/getSeriesMetaData`` (one series, CSV with human headers, 204 when
  not accessible) and ``v1|v2/getImage``, ``getImageWithMD5Hash`` (the Go
  TCIA Data Retriever's default MD5 URL is ``v2/getImageWithMD5Hash``).

v2 needs a bearer token (the guest's from ``/nbia-api/oauth/token`` will do)
and answers 401 without one, where NBIA answered a 500.  v1 takes one too but
does not require it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from dicomhub.publish.http import DbDep
from dicomhub.publish.nbia import handlers, v4
from dicomhub.publish.nbia.auth import NbiaVisibilityDep, require_credential
from dicomhub.publish.nbia.params import Params, read_params

v1_router = APIRouter(prefix="/nbia-api/services/v1", tags=["nbia"])
v2_router = APIRouter(
    prefix="/nbia-api/services/v2", tags=["nbia"], dependencies=[Depends(require_credential)]
)


def _params(request: Request, *allowed: str, required: tuple[str, ...] = ()) -> Params:
    return read_params(request.query_params.multi_items(), allowed, required=required)


@v1_router.get("/getContentsByName")
def get_contents_by_name(request: Request) -> Response:
    """A shared cart's series; there are no shared carts, so never any."""
    _params(request, "name", required=("name",))
    return Response(status_code=200)


def _metadata(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    params = _params(request, "SeriesInstanceUID", required=("SeriesInstanceUID",))
    return handlers.legacy_series_metadata(db, seen, params.require("SeriesInstanceUID"))


for _router in (v1_router, v2_router):
    _router.add_api_route("/getSeriesMetaData", _metadata, methods=["GET"])
    # The same ZIPs as v4: one handler each, whichever version a client calls.
    _router.add_api_route("/getImage", v4.get_image, methods=["GET"])
    _router.add_api_route("/getImageWithMD5Hash", v4.get_image_with_md5, methods=["GET"])
