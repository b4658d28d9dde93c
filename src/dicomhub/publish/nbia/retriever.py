"""What the NBIA Data Retriever calls: the download servlet (GUI) and the Linux CLI's routes.

The GUI takes ``downloadServerUrl`` from the manifest (it must end in
``nbia-download/servlet/DownloadServlet``) and calls, on that host:

* ``POST …/DownloadServletVersion`` (``os``, ``appVersion``): text lines of
  latest version, installer URL, encryption key, forced upgrade, help-desk
  and online-help URLs;
* ``POST …/DownloadServletV4`` with ``numberOfSeries`` and ``series1…N``: one
  ``|``-separated line of 24 fields per series, or 460 (a guest asked for a
  series it may not see), 461 (bad credentials), 462 (not authorized);
* ``POST …/DownloadServletV4`` with ``seriesUid`` (and ``sopUids`` to skip,
  ``newFileNames``, ``getMD5Hash``): a TAR of ``<SOP UID>^<acq>-<ins>.dcm``
  entries, then ``md5hashes.csv``; 403 for a series it may not see.

The Linux CLI calls ``v1/getUserAgreementTxt``, ``v1/getDeniedSeries`` (204
when nothing is denied), ``v1/getAllSOPClassDefinition`` (Java properties),
``v1|v2/getSeriesMetaData`` and ``v1|v2/getDCMImage`` (a ZIP without licence).

Differences from NBIA, on purpose: the TAR has a ``Content-Length`` and never
ends short with a 200; ``sopUids`` is matched UID by UID (NBIA tests substrings,
so ``1.2.3.1`` also skipped ``1.2.3.11``); ``md5hashes.csv`` names the files as
written; a requested UID listed twice gets its line twice (NBIA failed the
batch).  The GUI's signed-in mode sends the password encrypted with NBIA's
own cipher, which this archive does not implement: it answers 461 and the
CLI's OAuth flow (or the Go retriever) serves signed-in users instead.
``getDeniedSeries`` answers for the caller's own credential, never for the
``userName`` it names, so it cannot be used to probe another user's grants.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydicom._uid_dict import UID_dictionary
from sqlalchemy.orm import Session

from dicomhub.context import PublicContext
from dicomhub.errors import BadRequest, PayloadTooLarge
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import check_name, check_uid
from dicomhub.publish.http import ContextDep, DbDep
from dicomhub.publish.nbia import archive, handlers, tarstream
from dicomhub.publish.nbia.auth import GUEST, NbiaVisibilityDep, require_credential
from dicomhub.publish.nbia.catalog import series_by_uids
from dicomhub.publish.nbia.formats import CSV, nbia_date, parse_format, render_json
from dicomhub.publish.nbia.instances import instances_of, one_series
from dicomhub.publish.nbia.params import MAX_LIST, read_params, uid_list

servlet_router = APIRouter(prefix="/nbia-download/servlet", tags=["nbia"])
cli_v1_router = APIRouter(prefix="/nbia-api/services/v1", tags=["nbia"])
cli_v2_router = APIRouter(
    prefix="/nbia-api/services/v2", tags=["nbia"], dependencies=[Depends(require_credential)]
)

LOGIN_NEEDED = 460
LOGIN_FAILED = 461
NOT_AUTHORIZED = 462
#: Answered as the latest version to clients older than the V4 protocol.
LATEST_VERSION = "4.4"
_SERIES_FIELD = re.compile(r"series[1-9][0-9]{0,5}")
_INFO_FIELDS = frozenset({"numberOfSeries", "userId", "password"})
_DOWNLOAD_FIELDS = frozenset(
    {
        "seriesUid",
        "userId",
        "password",
        "sopUids",
        "includeAnnotation",
        "hasAnnotation",
        "Range",
        "newFileNames",
        "getMD5Hash",
    }
)
_NOT_NEW_NAMES = frozenset({"", "n", "no", "false", "0"})
_PLAIN = re.compile(r"[^a-zA-Z0-9 .-]")
_PLAIN_URI = re.compile(r"[^a-zA-Z0-9 ./:-]")
_SOP_SPLIT = re.compile(r"[\s,']+")


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="text/plain")


def _version(text: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", text)
    return tuple(int(part) for part in parts[:4])


def _servlet_key(secret: str) -> str:
    """The 'encryption key' line: stable per instance, derived from (never equal to) the secret."""
    return hmac.new(secret.encode(), b"nbia download servlet", hashlib.sha256).hexdigest()[:16]


@servlet_router.api_route("/DownloadServletVersion", methods=["GET", "POST"])
async def download_servlet_version(request: Request, ctx: ContextDep) -> Response:
    """Version lines: never ahead of a V4 client (so no upgrade prompt), V4 for older ones."""
    fields = dict(request.query_params.multi_items())
    fields.update(await handlers.posted_form(request))
    unknown = sorted(set(fields) - {"os", "appVersion"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0][:40]!r}; expected os and appVersion")
    asked = _version(fields.get("appVersion", ""))
    latest = fields["appVersion"] if asked >= _version(LATEST_VERSION) else LATEST_VERSION
    base = str(request.base_url).rstrip("/")
    key = _servlet_key(ctx.settings.secret_key.get_secret_value())
    lines = [latest, f"{base}/", key, "false", f"{base}/", f"{base}/"]
    return _text("\n".join(lines) + "\n")


@servlet_router.api_route("/DownloadServletV4", methods=["GET", "POST"])
async def download_servlet_v4(
    request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep
) -> Response:
    """Series information for a manifest, or one series as a TAR (see the module docstring)."""
    pairs = list(request.query_params.multi_items()) + await handlers.posted_form(request)
    fields = dict(pairs)
    signed_in = bool(fields.get("userId", "").strip()) and fields["userId"].strip() != GUEST
    password = request.headers.get("password") or fields.get("password")
    if "numberOfSeries" in fields:
        _check_fields(fields, _INFO_FIELDS, series_fields=True)
        if signed_in and password is not None:
            return _text(
                "Signing in through the download servlet is not supported here; use the "
                "Data Retriever's command line with -u/-p (OAuth) for limited collections.",
                LOGIN_FAILED,
            )
        return _series_info(db, seen, fields, signed_in)
    _check_fields(fields, _DOWNLOAD_FIELDS, series_fields=False)
    if "seriesUid" not in fields:
        raise BadRequest(
            "numberOfSeries (series information) or seriesUid (a download) is required"
        )
    uid = check_uid(fields["seriesUid"].strip(), "seriesUid")
    series = one_series(db, seen, uid)
    if series is None:
        return _text("Access Denied", 403)
    skip = {part for part in _SOP_SPLIT.split(fields.get("sopUids", "")) if part}
    # NBIA takes any value longer than one character as yes (even "No"); a no is a no here
    new_names = fields.get("newFileNames", "").strip().lower() not in _NOT_NEW_NAMES
    with_md5 = fields.get("getMD5Hash", "").strip() == "Yes"
    return _series_tar(db, ctx, series, skip, new_names=new_names, with_md5=with_md5)


def _check_fields(fields: dict[str, str], allowed: frozenset[str], *, series_fields: bool) -> None:
    for name in fields:
        if name in allowed or (series_fields and _SERIES_FIELD.fullmatch(name)):
            continue
        raise BadRequest(f"unknown field {name[:40]!r} for DownloadServletV4")


def _series_info(
    db: Session, seen: Visibility, fields: dict[str, str], signed_in: bool
) -> Response:
    raw = fields["numberOfSeries"].strip()
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest("numberOfSeries must be a positive number")
    count = int(raw)
    if count > MAX_LIST:
        raise PayloadTooLarge(f"at most {MAX_LIST} series per request; split the manifest")
    asked = [
        check_uid(fields[f"series{i}"].strip(), f"series{i}")
        for i in range(1, count + 1)
        if fields.get(f"series{i}", "").strip()
    ]
    if not asked:
        raise BadRequest("The manifest file should include at least one series instance UID.")
    found = {row.series_instance_uid: row for row in series_by_uids(db, seen, asked)}
    if len(found) < len(set(asked)):
        if signed_in:
            return _text("Insufficient privilege.", NOT_AUTHORIZED)
        return _text("Login needed.", LOGIN_NEEDED)
    lines = [_info_line(found[uid]) for uid in asked]
    return Response(
        "\n".join(lines) + "\n",
        media_type="text/plain",
        headers={"Content-Disposition": "attachment;filename=downloadname.txt"},
    )


def _clean(text: str | None, pattern: re.Pattern[str] = _PLAIN) -> str:
    out = pattern.sub("", text or "")
    return out or "NA"


def _info_line(row: Any) -> str:
    """The 24 fields ``JnlpArgumentsParser`` reads, in its order."""
    sop_class = row.sop_class_uid or ""
    entry = UID_dictionary.get(sop_class)
    fields = [
        row.name,
        row.patient_id,
        row.study_instance_uid,
        row.series_instance_uid,
        "No",
        row.instance_count,
        row.total_size,
        0,
        "url",
        "displayName",
        "true",
        nbia_date(row.study_date) or "NA",
        _clean(row.study_number),
        _clean(row.study_description),
        "NA" if row.series_number is None else row.series_number,
        _clean(row.series_description),
        "NO",
        _clean(row.doi, _PLAIN_URI),
        _clean(row.manufacturer),
        row.modality or "NA",
        sop_class or "NA",
        entry[0] if entry else "NA",
        row.license_name or "NA",
        row.license_url or "NA",
    ]
    return "|".join(str(value).replace("|", " ") for value in fields)


def _series_tar(
    db: Session, ctx: PublicContext, series: Any, skip: set[str], *, new_names: bool, with_md5: bool
) -> StreamingResponse:
    instances = instances_of(db, series.id, with_acquisition=True)
    names = archive.new_file_names(instances)
    members: list[archive.Member] = []
    md5_rows = ["Filename,MD5Hash"]
    for name, instance in zip(names, instances, strict=True):
        if instance.sop_uid in skip:
            continue
        entry = f"{instance.sop_uid}^{name}" if new_names else f"{instance.sop_uid}.dcm"
        written = name if new_names else entry
        members.append(
            archive.Member(entry, instance.size, blob_key=instance.blob_key, sha256=instance.sha256)
        )
        md5_rows.append(f"{written},{instance.md5}")
    if with_md5:
        table = ("\n".join(md5_rows) + "\n").encode()
        members.append(archive.Member("md5hashes.csv", len(table), data=table))
    archive.check_blobs(ctx.store, members)
    now = datetime.now(UTC)
    headers = {
        "Content-Length": str(tarstream.tar_length(members, now)),
        "Content-Disposition": f'attachment; filename="{series.series_instance_uid}.tar"',
    }
    body = tarstream.stream(ctx.store, members, now)
    return StreamingResponse(body, media_type="application/x-tar", headers=headers)


# -- the Linux CLI's v1/v2 routes ---------------------------------------------------------


@cli_v1_router.get("/getUserAgreementTxt")
def get_user_agreement_txt(request: Request) -> Response:
    """No archive-wide agreement (each collection carries its licence): 200, empty.

    An empty text is what lets the CLI run unattended (it prompts only for a
    non-empty one); the GUI only needs a 200.
    """
    read_params(request.query_params.multi_items(), ())
    return _text("")


async def _denied(request: Request, db: DbDep, seen: NbiaVisibilityDep) -> Response:
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        pairs += await handlers.posted_form(request)
    lists: list[str] = []
    fmt = CSV
    for name, value in pairs:
        if name == "seriesList":
            lists.append(value)
        elif name == "format":
            fmt = parse_format(value, CSV)
        elif name == "userName":
            check_name(value, "userName")
        else:
            raise BadRequest(
                f"Invalid query parameter: {name[:40]!r}. Allowed parameters are: "
                "[userName, seriesList, format]"
            )
    asked = uid_list(lists)
    visible = {row.series_instance_uid for row in series_by_uids(db, seen, asked)}
    denied = [uid for uid in asked if uid not in visible]
    if not denied:
        return Response(status_code=204)
    if fmt == CSV:
        return Response("SeriesInstanceUID\n" + "\n".join(denied) + "\n", media_type="text/csv")
    return render_json([{"SeriesInstanceUID": uid} for uid in denied])


cli_v1_router.add_api_route("/getDeniedSeries", _denied, methods=["GET", "POST"])


@cli_v1_router.get("/getAllSOPClassDefinition")
def get_all_sop_class_definition(request: Request) -> Response:
    """Every SOP Class UID and its name, as the Java properties file the CLI loads."""
    read_params(request.query_params.multi_items(), ())
    lines = [
        f"{uid}={_properties_value(entry[0])}"
        for uid, entry in UID_dictionary.items()
        if entry[1] == "SOP Class"
    ]
    return _text("\n".join(lines) + "\n")


def _properties_value(text: str) -> str:
    out = text.replace("\\", "\\\\")
    return "".join(ch if ord(ch) < 128 else f"\\u{ord(ch):04x}" for ch in out)


def _dcm_image(request: Request, db: DbDep, seen: NbiaVisibilityDep, ctx: ContextDep) -> Response:
    params = read_params(
        request.query_params.multi_items(),
        ("SeriesInstanceUID", "IncludeAnnotation", "MD5Verification"),
        required=("SeriesInstanceUID",),
    )
    handlers.flag(params.get("IncludeAnnotation"), "IncludeAnnotation")
    md5 = handlers.flag(params.get("MD5Verification"), "MD5Verification")
    uid = params.require("SeriesInstanceUID")
    return handlers.series_zip(db, seen, ctx, uid, new_names=True, licence=False, include_md5=md5)


for _router in (cli_v1_router, cli_v2_router):
    _router.add_api_route("/getDCMImage", _dcm_image, methods=["GET"])
