"""NBIA's v4 REST API under ``/nbia-api/services/v4/``: what tcia_utils 3.2+ calls.

Anonymous callers are the guest (public collections); a bearer token widens
that to the collections its user was granted.  A limited collection the caller
may not see behaves as one that does not exist: empty lists, no counts, 404 for
its series' images.  Conventions follow NBIA (see
:mod:`dicomhub.publish.nbia.formats`); statuses are better than NBIA's where
that breaks no client (404 rather than 400 for an unknown series).
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request, Response

from dicomhub.core.store.base import verified_blob
from dicomhub.errors import BadRequest
from dicomhub.publish.http import ContextDep, DbDep
from dicomhub.publish.manifests import MANIFEST_MEDIA_TYPE, basket_id, tcia_manifest
from dicomhub.publish.nbia import catalog, handlers, instances, search
from dicomhub.publish.nbia.auth import NbiaVisibilityDep
from dicomhub.publish.nbia.formats import (
    CSV_DOWNLOAD,
    day_start,
    parse_format,
    parse_nbia_date,
    render,
    render_json,
)
from dicomhub.publish.nbia.params import Params, read_params
from dicomhub.publish.nbia.tags import dicom_tags

PREFIX = "/nbia-api/services/v4"
_EPOCH = day_start(date(1900, 1, 1))
router = APIRouter(prefix=PREFIX, tags=["nbia"])

_SERIES_PARAMS = (
    "Collection",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
)


def _params(request: Request, *allowed: str, required: tuple[str, ...] = ()) -> Params:
    return read_params(request.query_params.multi_items(), allowed, required=required)


def _filter(params: Params) -> catalog.NbiaFilter:
    return catalog.NbiaFilter(
        collection=params.get("Collection"),
        patient_id=params.get("PatientID") or params.get("PatientId"),
        study_uid=params.get("StudyInstanceUID"),
        series_uid=params.get("SeriesInstanceUID"),
        modality=params.get("Modality"),
        body_part=params.get("BodyPartExamined"),
        manufacturer=params.get("Manufacturer"),
        model=params.get("ManufacturerModelName"),
    )


def _fmt(params: Params) -> str:
    return parse_format(params.get("format"))


# -- value lists ------------------------------------------------------------------------


@router.get("/getCollectionValues")
def get_collection_values(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """The collections the caller may see (that hold series)."""
    params = _params(request)
    rows = [{"Collection": name} for name in catalog.collection_names(db, seen)]
    return render(rows, ("Collection",), _fmt(params))


def _values(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, key: str, *allowed: str
) -> Response:
    params = _params(request, *allowed)
    values = catalog.values_of(db, seen, _filter(params), key)
    return render([{key: value} for value in values], (key,), _fmt(params))


@router.get("/getModalityValues")
def get_modality_values(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Modalities (upper-cased) of the series in scope."""
    return _values(request, db, seen, "Modality", "Collection", "BodyPartExamined")


@router.get("/getBodyPartValues")
def get_body_part_values(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Body parts (upper-cased) of the series in scope."""
    return _values(request, db, seen, "BodyPartExamined", "Collection", "Modality")


@router.get("/getManufacturerValues")
def get_manufacturer_values(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Manufacturers (upper-cased) of the series in scope."""
    return _values(request, db, seen, "Manufacturer", "Collection", "Modality", "BodyPartExamined")


def _counts(
    request: Request,
    db: DbDep,
    seen: NbiaVisibilityDep,
    key: str | None,
    label: str,
    *allowed: str,
) -> Response:
    params = _params(request, *allowed)
    counts = catalog.patient_counts(db, seen, _filter(params), key)
    rows = [{label: value, "Count": count, "Authorized": 1} for value, count in counts]
    return render(rows, (label, "Count", "Authorized"), _fmt(params))


@router.get("/getCollectionValuesAndCounts")
def get_collection_counts(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients per visible collection."""
    return _counts(request, db, seen, None, "Collection")


@router.get("/getModalityValuesAndCounts")
def get_modality_counts(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients per modality."""
    return _counts(request, db, seen, "Modality", "Modality", "Collection", "BodyPartExamined")


@router.get("/getBodyPartValuesAndCounts")
def get_body_part_counts(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients per body part (NBIA's key is ``BodyPart``)."""
    return _counts(request, db, seen, "BodyPartExamined", "BodyPart", "Collection", "Modality")


@router.get("/getManufacturerValuesAndCounts")
def get_manufacturer_counts(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients per manufacturer."""
    return _counts(
        request,
        db,
        seen,
        "Manufacturer",
        "Manufacturer",
        "Collection",
        "Modality",
        "BodyPartExamined",
    )


@router.get("/getCollectionDescriptions")
def get_collection_descriptions(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Description, id, name and DOI of each visible collection (nulls kept, as NBIA)."""
    params = _params(request, "collectionName")
    rows = catalog.collection_descriptions(db, seen, params.get("collectionName"))
    if not rows:
        return Response(status_code=200)
    fmt = _fmt(params)
    if fmt == "json":
        return render_json(rows)
    return render(rows, ("description", "id", "collectionName", "descriptionURI"), fmt)


# -- patients, studies, series ----------------------------------------------------------


@router.get("/getPatient")
def get_patient(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients of the visible collections (of one collection if given)."""
    params = _params(request, "Collection", "PatientId", "PatientID")
    patient = params.get("PatientId") or params.get("PatientID")
    rows = catalog.find_patients(db, seen, params.get("Collection"), patient)
    return render(rows, catalog.PATIENT_COLUMNS, _fmt(params))


@router.get("/NewPatientsInCollection")
def new_patients(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Patients of a collection released on or after ``fromDate`` (MM-DD-YYYY)."""
    params = _params(request, "Collection", "fromDate", required=("Collection", "fromDate"))
    since = day_start(parse_nbia_date(params.require("fromDate"), "fromDate"))
    rows = catalog.find_patients(db, seen, params.get("Collection"), since=since)
    return render(rows, catalog.PATIENT_COLUMNS, _fmt(params))


@router.get("/getPatientByCollectionAndModality")
def patients_by_modality(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """PatientIDs of a collection with a series of a modality (both required)."""
    params = _params(request, "Collection", "Modality", required=("Collection", "Modality"))
    ids = catalog.patients_with(db, seen, _filter(params))
    rows = [{"PatientId": pid, "Authorized": 1} for pid in ids]
    return render(rows, ("PatientId", "Authorized"), _fmt(params))


@router.get("/getPatientStudy")
def get_patient_study(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Studies, by collection, patient or StudyInstanceUID."""
    params = _params(request, "Collection", "PatientID", "StudyInstanceUID")
    rows = catalog.find_studies(
        db, seen, params.get("Collection"), params.get("PatientID"), params.get("StudyInstanceUID")
    )
    return render(rows, catalog.STUDY_COLUMNS, _fmt(params))


@router.get("/NewStudiesInPatientCollection")
def new_studies(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Studies of a collection (and patient) released on or after ``fromDate``."""
    params = _params(
        request, "Collection", "PatientID", "fromDate", required=("Collection", "fromDate")
    )
    since = day_start(parse_nbia_date(params.require("fromDate"), "fromDate"))
    rows = catalog.find_studies(
        db, seen, params.get("Collection"), params.get("PatientID"), since=since
    )
    return render(rows, catalog.STUDY_COLUMNS, _fmt(params))


@router.get("/getSeries")
def get_series(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Series matching any of the eight filters (all of them, when several are given)."""
    params = _params(request, *_SERIES_PARAMS)
    rows = catalog.find_series(db, seen, _filter(params))
    return render(rows, catalog.SERIES_COLUMNS, _fmt(params))


@router.get("/getUpdatedSeries")
def get_updated_series(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Series changed after ``fromDate`` (MM-DD-YYYY; 01-01-1900 if not given)."""
    params = _params(request, "fromDate")
    when = params.get("fromDate")
    since = day_start(parse_nbia_date(when, "fromDate")) if when else None
    rows = catalog.find_series(db, seen, catalog.NbiaFilter(), updated_after=since or _EPOCH)
    return render(rows, catalog.SERIES_COLUMNS, _fmt(params))


@router.get("/getSeriesSize")
def get_series_size(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Total bytes and object count of one series."""
    params = _params(request, "SeriesInstanceUID", required=("SeriesInstanceUID",))
    series = instances.one_series(db, seen, params.require("SeriesInstanceUID"))
    rows = []
    if series is not None:
        rows = [{"TotalSizeInBytes": series.total_size, "ObjectCount": series.instance_count}]
    return render(rows, ("TotalSizeInBytes", "ObjectCount"), _fmt(params))


@router.get("/getSOPInstanceUIDs")
def get_sop_instance_uids(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """SOPInstanceUIDs of one series, in instance order."""
    params = _params(request, "SeriesInstanceUID", required=("SeriesInstanceUID",))
    uids = instances.series_uid_of_instances(db, seen, params.require("SeriesInstanceUID"))
    return render([{"SOPInstanceUID": uid} for uid in uids], ("SOPInstanceUID",), _fmt(params))


@router.post("/getSeriesMetadata")
async def get_series_metadata(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """Metadata of the posted series (form ``list``: comma-separated UIDs), CSV by default."""
    items = await handlers.posted_form(request)
    lists: list[str] = []
    fmt = CSV_DOWNLOAD
    for name, value in items:
        if name == "list":
            lists.append(value)
        elif name == "format":
            fmt = parse_format(value, CSV_DOWNLOAD)
        else:
            raise BadRequest(
                f"Invalid form parameter: {name[:40]!r}. Allowed parameters are: [list, format]"
            )
    return handlers.series_metadata(db, seen, lists, fmt)


# -- images -----------------------------------------------------------------------------


@router.get("/getImage")
def get_image(request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep) -> Response:
    """A ZIP of one series: LICENSE, the images, and md5hashes.csv with ``IncludeMD5=Yes``."""
    params = _params(
        request,
        "SeriesInstanceUID",
        "NewFileNames",
        "IncludeMD5",
        required=("SeriesInstanceUID",),
    )
    return handlers.series_zip(
        db,
        seen,
        ctx,
        params.require("SeriesInstanceUID"),
        new_names=handlers.flag(params.get("NewFileNames"), "NewFileNames"),
        licence=True,
        include_md5=handlers.flag(params.get("IncludeMD5"), "IncludeMD5"),
    )


@router.get("/getImageWithMD5Hash")
def get_image_with_md5(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """A ZIP of one series as ``00000001.dcm``… plus md5hashes.csv (no LICENSE)."""
    params = _params(request, "SeriesInstanceUID", required=("SeriesInstanceUID",))
    return handlers.series_zip(
        db,
        seen,
        ctx,
        params.require("SeriesInstanceUID"),
        new_names=False,
        licence=False,
        include_md5=True,
    )


@router.get("/getSingleImage")
def get_single_image(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """One instance's DICOM file (a single byte range when asked, to resume)."""
    params = _params(
        request,
        "SeriesInstanceUID",
        "SOPInstanceUID",
        required=("SeriesInstanceUID", "SOPInstanceUID"),
    )
    return handlers.single_image(
        db,
        seen,
        ctx,
        params.require("SeriesInstanceUID"),
        params.require("SOPInstanceUID"),
        range_header=request.headers.get("range"),
        if_range=request.headers.get("if-range"),
    )


@router.get("/getDicomTags")
def get_dicom_tags(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """The header of the series' first image as element/name/data rows."""
    params = _params(request, "SeriesUID", required=("SeriesUID",))
    series = instances.one_series(db, seen, params.require("SeriesUID"))
    if series is None:
        return Response(status_code=200)
    images = instances.instances_of(db, series.id, with_acquisition=False)
    if not images:
        return Response(status_code=200)
    first = images[0]
    data = b"".join(verified_blob(ctx.store, first.blob_key, first.size, first.sha256))
    rows = dicom_tags(data)
    return render(rows, ("element", "name", "data"), _fmt(params))


# -- simple search and DOI --------------------------------------------------------------


@router.post("/getSimpleSearch")
async def get_simple_search(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    """NBIA's patient-level simple search (numbered criteria, paging, sorting)."""
    criteria = search.parse_criteria(await handlers.posted_form(request))
    subjects = search.matching_subjects(db, seen, criteria)
    if not subjects:
        return Response(status_code=200)
    return render_json(search.summary(subjects, criteria))


@router.post("/getManifestForSimpleSearch")
async def get_manifest_for_simple_search(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """A ``.tcia`` manifest of the matching series of the page of patients asked for."""
    criteria = search.parse_criteria(await handlers.posted_form(request))
    subjects = search.matching_subjects(db, seen, criteria)
    uids = search.series_of_page(subjects, criteria)
    name = basket_id()
    text = "".join(tcia_manifest(uids, ctx.settings.base_url, name))
    return Response(
        text,
        media_type=MANIFEST_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/getCollectionOrSeriesForDOI")
async def get_collection_or_series_for_doi(
    request: Request, db: DbDep, seen: NbiaVisibilityDep
) -> Response:
    """Collections (``CollectionOrSeries=series``: their series) published under a DOI URL."""
    items = dict(
        read_params(await handlers.posted_form(request), ("DOI", "CollectionOrSeries")).values
    )
    doi = items.get("DOI")
    if not doi:
        raise BadRequest("A parameter DOI is required.")
    want_series = items.get("CollectionOrSeries", "").lower() == "series"
    rows = catalog.collections_for_doi(db, seen, doi, series=want_series)
    if not rows:
        return Response(status_code=200)
    return render_json(rows)
