"""Against a server that is NBIA, not dicomhub: deflated ZIPs, v1 column names, lies in md5hashes.

The server here is a small ASGI app that answers the way NBIA's v4 resources
do (``getSeriesMetadata`` CSV, ``getImageWithMD5Hash`` deflated ZIP, ``getSeries``
JSON, no ``/api``), and misbehaves for chosen series: an MD5 that does not match,
an entry name that climbs out of the folder, a listed file that is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.download.helpers import check_md5s, read_csv, run_cli, series_folders
from tests.download.site import serve_on
from tests.fixtures.http import free_port

GOOD = [f"1.3.6.1.4.1.9328.50.{n}" for n in range(1, 6)]
BAD_MD5, EVIL_NAME, MISSING = (
    "1.3.6.1.4.1.9328.60.1",
    "1.3.6.1.4.1.9328.60.2",
    "1.3.6.1.4.1.9328.60.3",
)
ALL = [*GOOD, BAD_MD5, EVIL_NAME, MISSING]


def files_of(uid: str) -> list[tuple[str, bytes]]:
    return [(f"{n:08d}.dcm", f"DICM {uid} {n} ".encode() * 300) for n in range(1, 4)]


def series_zip(uid: str) -> bytes:
    buffer = io.BytesIO()
    rows = ["Filename,MD5Hash"]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files_of(uid):
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if uid == BAD_MD5 and name.endswith("2.dcm"):
                md5 = "0" * 32
            if uid == EVIL_NAME and name.endswith("3.dcm"):
                name = "../../escaped.dcm"
            rows.append(f"{name},{md5}")
            if uid == MISSING and name.endswith("3.dcm"):
                continue
            zf.writestr(name, data)
        zf.writestr("md5hashes.csv", "\n".join(rows) + "\n")
    return buffer.getvalue()


class FakeNbia:
    """NBIA's v4 answers for :data:`ALL`, in collection ``NBIA-COLL``."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        endpoint = scope["path"].rsplit("/", 1)[-1]
        query = parse_qs(scope["query_string"].decode())
        self.requests[endpoint] += 1
        status, kind, data = self.answer(endpoint, query, parse_qs(body.decode()))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", kind)]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})

    def answer(
        self, endpoint: str, query: dict[str, list[str]], form: dict[str, list[str]]
    ) -> tuple[int, bytes, bytes]:
        if endpoint == "getSeriesMetadata":
            asked = ",".join(form.get("list", [])).split(",")
            lines = ['"Series UID","Collection","Subject ID","Study UID","Number of Images"']
            lines += [
                f'"{u}","NBIA-COLL","P-1","1.2.3.{ALL.index(u)}","3"' for u in asked if u in ALL
            ]
            return 200, b"text/csv", ("\r\n".join(lines) + "\r\n").encode()
        if endpoint == "getSeries":
            rows = [{"SeriesInstanceUID": u, "Collection": "NBIA-COLL"} for u in GOOD]
            return 200, b"application/json", json.dumps(rows).encode()
        if endpoint == "getImageWithMD5Hash":
            uid = query.get("SeriesInstanceUID", [""])[0]
            if uid not in ALL:
                return 400, b"text/plain", b"The user has not been granted the access"
            return 200, b"application/octet-stream", series_zip(uid)
        return 404, b"text/plain", b"Not Found"


@pytest.fixture
def nbia() -> Iterator[tuple[str, FakeNbia]]:
    app = FakeNbia()
    with serve_on(app, free_port()) as url:
        yield url, app


def manifest(path: Path, url: str, uids: list[str]) -> Path:
    path.write_text(
        f"downloadServerUrl={url}/nbia-download/servlet/DownloadServlet\nincludeAnnotation=false\n"
        "noOfrRetry=4\ndatabasketId=manifest-1.tcia\nmanifestVersion=3.0\nListOfSeriesToDownload=\n"
        + "".join(u + "\n" for u in uids)
    )
    return path


def test_nbia_server_deflated_zips_and_bad_series(
    nbia: tuple[str, FakeNbia], tmp_path: Path
) -> None:
    url, server = nbia
    dest = tmp_path / "out"
    m = manifest(tmp_path / "m.tcia", url, ALL)
    result = run_cli(m, "--dest", dest, "-q", "--backoff", "0.01", "--retries", "1")
    assert result.exit_code == 2, result.output
    folders = series_folders(dest)
    assert set(folders) == set(GOOD)
    for folder in folders.values():
        assert check_md5s(folder) == 3
        assert folder.relative_to(dest).parts[:2] == ("NBIA-COLL", "P-1")
    problems = {row["Series UID"]: row["Detail"] for row in read_csv(dest / "problems.csv")}
    assert "is not the published one" in problems[BAD_MD5]
    assert "unsafe entry name" in problems[EVIL_NAME]
    assert "missing" in problems[MISSING]
    assert not list(tmp_path.rglob("escaped.dcm"))
    assert server.requests["getImageWithMD5Hash"] == len(GOOD) + 3 * 2
    assert server.requests["me"] == 1


def test_nbia_collection_source(nbia: tuple[str, FakeNbia], tmp_path: Path) -> None:
    url, _server = nbia
    dest = tmp_path / "out"
    result = run_cli("NBIA-COLL", "--server", url, "--dest", dest, "-q", "--layout", "flat")
    assert result.exit_code == 0, result.output
    assert set(series_folders(dest)) == set(GOOD)
