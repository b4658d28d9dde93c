"""NBIA's v1 and v2 routes that clients still call.

* ``v1/getContentsByName`` (tcia_utils' ``getSharedCart``): the series of the
  basket a user shared under that name, as JSON in NBIA's v1 shape, limited
  to the collections the caller may see; an unknown name gives an empty body,
  as NBIA does.
* ``v1|v2/getSeriesMetaData`` (one series, CSV with human headers, 204 when
  not accessible) and ``v1|v2/getImage``, ``getImageWithMD5Hash`` (the Go
  TCIA Data Retriever's default MD5 URL is ``v2/getImageWithMD5Hash``).

v2 needs a bearer token (the guest's from ``/nbia-api/oauth/token`` will do)
and answers 401 without one, where NBIA answered a 500.  v1 takes one too but
does not require it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from dicomhub.publish.basket import shared_basket, shared_rows
from dicomhub.publish.http import DbDep
from dicomhub.publish.nbia import handlers, v4
from dicomhub.publish.nbia.auth import NbiaVisibilityDep, require_credential
from dicomhub.publish.nbia.formats import render
from dicomhub.publish.nbia.params import Params, read_params

v1_router = APIRouter(prefix="/nbia-api/services/v1", tags=["nbia"])
v2_router = APIRouter(
    prefix="/nbia-api/services/v2", tags=["nbia"], dependencies=[Depends(require_credential)]
)


def _params(request: Request, *allowed: str, required: tuple[str, ...] = ()) -> Params:
    return read_params(request.query_params.multi_items(), allowed, required=required)


#: The keys of a shared cart's rows, in NBIA's order ("Date Released" has a space).
CART_COLUMNS = (
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "ProtocolName",
    "SeriesDate",
    "SeriesDescription",
    "BodyPartExamined",
    "SeriesNumber",
    "AnnotationsFlag",
    "Collection",
    "PatientID",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "ImageCount",
    "Date Released",
)


def _timestamp(value: date | datetime | None) -> str | None:
    """A date as v1 writes it (Java ``Timestamp.toString()``: ``2000-01-01 00:00:00.0``)."""
    if value is None:
        return None
    return f"{value:%Y-%m-%d} 00:00:00.0"


def _cart_row(row: Any) -> dict[str, Any]:
    values = (
        row.series_instance_uid,
        row.study_instance_uid,
        row.modality,
        row.protocol_name,
        _timestamp(row.series_date),
        row.series_description,
        row.body_part_examined,
        row.series_number,
        None,
        row.name,
        row.patient_id,
        row.manufacturer,
        row.manufacturer_model_name,
        row.software_versions,
        row.instance_count,
        _timestamp(row.created_at),
    )
    return dict(zip(CART_COLUMNS, values, strict=True))


@v1_router.get("/getContentsByName")
def get_contents_by_name(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """A shared basket's series the caller may see (an empty body for an unknown name)."""
    name = _params(request, "name", required=("name",)).require("name")
    basket = shared_basket(db, name)
    rows = [] if basket is None else shared_rows(db, seen, basket)
    return render([_cart_row(row) for row in rows], CART_COLUMNS)


def _metadata(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    params = _params(request, "SeriesInstanceUID", required=("SeriesInstanceUID",))
    return handlers.legacy_series_metadata(db, seen, params.require("SeriesInstanceUID"))


for _router in (v1_router, v2_router):
    _router.add_api_route("/getSeriesMetaData", _metadata, methods=["GET"])
    # The same ZIPs as v4: one handler each, whichever version a client calls.
    _router.add_api_route("/getImage", v4.get_image, methods=["GET"])
    _router.add_api_route("/getImageWithMD5Hash", v4.get_image_with_md5, methods=["GET"])
