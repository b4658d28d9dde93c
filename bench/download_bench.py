"""dicomhub download against tcia_utils' downloadSeries and the raw limit, on one server.

Usage: python bench/download_bench.py [--series N] [--instances K] [--pixel-bytes B]
                                      [--workers W] [--keep] [--with-nbia]

Builds a public database (SQLite) with N series (default 10,000) of K real
DICOM files each (B bytes of pixel data; the default keeps them tiny), writes
the same bytes as one static ZIP per series (the entries getImageWithMD5Hash
sends), and serves the public app and the static folder from ONE uvicorn
process on loopback.  Then, one run each, every contender in its own process
with a fresh destination, the same .tcia manifest:

* ``dicomhub download`` (``-j W``, flat layout): on this server it probes
  ``/api/download`` and takes the bulk path (many series per request, one tar,
  every file checked against its SHA-256); with ``--with-nbia`` also the same
  command with ``--nbia-only`` (getImageWithMD5Hash per series, MD5-checked);
* tcia_utils ``downloadSeries(manifest, input_type="manifest", hash="y")``
  from PyPI, unchanged (its defaults: 10 threads), pointed at the server by
  replacing ``tcia_utils.nbia.setApiUrl``, the only hook it has;
* the same tcia_utils run against the same ZIPs served as static files at the
  path it asks (``/static-nbia/v4/getImageWithMD5Hash``; its metadata calls go
  on to the archive), so the archive's getImage is compared with a file server
  through the real client;
* the raw limit: the static ZIPs fetched by ``W`` httpx threads and streamed
  to disk, nothing else;
* the endpoint limit: the same bare client on ``getImageWithMD5Hash`` (what
  the server itself can deliver, so how much of the gap is the server's).

It reports wall time, series/s, MB/s and peak RSS (``VmHWM`` of each process)
and the ratios (goal: at least 3x tcia_utils, 80% of raw, RSS < 250 MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.download.site import add_bulk_with_blobs  # noqa: E402
from tests.fixtures.http import free_port, wait_for_http  # noqa: E402

from dicomhub.core.db import Instance, Series, make_engine, make_sessionmaker  # noqa: E402
from dicomhub.core.db.migrate import upgrade  # noqa: E402

COLLECTION = "BENCH-DOWNLOAD"
RAW_PATH = "/raw/{uid}.zip"
#: The server's own ceiling: the same endpoint dicomhub download uses, bytes to disk only.
ENDPOINT_PATH = "/nbia-api/services/v4/getImageWithMD5Hash?SeriesInstanceUID={uid}"

SERVE = """
import sys, uvicorn
from pathlib import Path
from starlette.staticfiles import StaticFiles
from dicomhub.settings import load_settings
from dicomhub.web.app import create_public_app
folder, port = Path(sys.argv[1]), int(sys.argv[2])
settings = load_settings(
    data_dir=folder, secret_key="s" * 32, public_database_url=f"sqlite:///{folder / 'public.db'}",
    public_store=(folder / "store").as_uri(), public_base_url=f"http://127.0.0.1:{port}",
).public()
app = create_public_app(settings)
app.mount("/raw", StaticFiles(directory=folder / "static"), name="raw")

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse

@app.get("/static-nbia/v4/{name}")
def static_nbia(name: str, request: Request):
    # The same ZIPs as static files at the path tcia_utils asks; anything else (series
    # metadata) is sent on to the archive's own route.
    if name == "getImageWithMD5Hash":
        uid = request.query_params["SeriesInstanceUID"]
        return FileResponse(folder / "static" / f"{uid}.zip", media_type="application/zip")
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/nbia-api/services/v4/{name}{query}", status_code=307)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""

TCIA_UTILS = """
import logging, sys
import tcia_utils.nbia as nbia
base = sys.argv[1] + sys.argv[4]
def set_api_url(endpoint, api_url="nbia"):
    return f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"
nbia.setApiUrl = set_api_url
logging.disable(logging.INFO)
nbia.downloadSeries(sys.argv[2], input_type="manifest", path=sys.argv[3], hash="y")
"""

RAW = """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx
base, manifest, dest, workers = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
template = sys.argv[5]
uids = manifest.read_text().splitlines()[6:]
dest.mkdir(parents=True, exist_ok=True)
client = httpx.Client(base_url=base, limits=httpx.Limits(max_connections=workers + 4))
def fetch(uid):
    with client.stream("GET", template.format(uid=uid)) as answer:
        answer.raise_for_status()
        with open(dest / f"{uid}.zip", "wb") as out:
            for chunk in answer.iter_bytes(256 * 1024):
                out.write(chunk)
with ThreadPoolExecutor(workers) as pool:
    list(pool.map(fetch, uids))
"""


def build(folder: Path, series: int, instances: int, pixel_bytes: int) -> list[str]:
    db_url = f"sqlite:///{folder / 'public.db'}"
    upgrade(db_url)
    return add_bulk_with_blobs(
        db_url, folder / "store", COLLECTION, series, instances=instances, pixel_bytes=pixel_bytes
    )


def static_zips(folder: Path) -> int:
    """One stored ZIP per series with the entries getImageWithMD5Hash sends; total bytes."""
    static = folder / "static"
    static.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'public.db'}")
    rows = (
        make_sessionmaker(engine)()
        .query(Series.series_instance_uid, Instance.blob_key, Instance.md5)
        .join(Instance, Instance.series_id == Series.id)
        .order_by(Series.id, Instance.instance_number)
    )
    by_series: dict[str, list[tuple[str, str]]] = {}
    for uid, key, md5 in rows:
        by_series.setdefault(uid, []).append((key, md5))
    engine.dispose()
    total = 0
    for uid, files in by_series.items():
        target = static / f"{uid}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
            lines = ["Filename,MD5Hash"]
            for n, (key, md5) in enumerate(files, start=1):
                name = f"{n:08d}.dcm"
                zf.write(folder / "store" / key, name)
                lines.append(f"{name},{md5}")
            zf.writestr("md5hashes.csv", "\n".join(lines) + "\n")
        total += target.stat().st_size
    return total


def measure(args: list[str]) -> tuple[float, float]:
    """Run ``args``; (wall seconds, peak RSS in MB from /proc VmHWM)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status = Path(f"/proc/{proc.pid}/status")
    peak = 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{args[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak / 1024


def dicom_files(dest: Path) -> int:
    return sum(1 for p in dest.rglob("*.dcm"))


def zips_ok(dest: Path, expected: int) -> int:
    found = list(dest.glob("*.zip"))
    assert len(found) == expected, (len(found), expected)
    return len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--pixel-bytes", type=int, default=0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    parser.add_argument(
        "--with-nbia", action="store_true", help="Also time dicomhub download --nbia-only."
    )
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dicomhub-download-bench-"))
    server_dir = work / "server"
    server_dir.mkdir()
    print(f"building {opts.series} series x {opts.instances} instance(s) in {work} ...")
    uids = build(server_dir, opts.series, opts.instances, opts.pixel_bytes)
    nbytes = static_zips(server_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(server_dir), str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"{base}/api/me", proc=server)
        manifest = work / "bench.tcia"
        answer = httpx.get(
            f"{base}/api/search/manifest.tcia", params={"collection": COLLECTION}, timeout=300
        )
        answer.raise_for_status()
        manifest.write_text(answer.text)
        assert len(manifest.read_text().splitlines()) == 6 + len(uids)
        files = len(uids) * opts.instances
        results: dict[str, tuple[float, float]] = {}
        w = str(opts.workers)
        results["tcia_utils"] = measure(
            [sys.executable, "-c", TCIA_UTILS, base, str(manifest), str(work / "tcia_utils"),
             "/nbia-api/services"]
        )  # fmt: skip
        assert dicom_files(work / "tcia_utils") == files, dicom_files(work / "tcia_utils")
        results["tcia_utils-static"] = measure(
            [sys.executable, "-c", TCIA_UTILS, base, str(manifest),
             str(work / "tcia_utils-static"), "/static-nbia"]
        )  # fmt: skip
        assert dicom_files(work / "tcia_utils-static") == files
        results["dicomhub"] = measure(
            [sys.executable, "-m", "dicomhub.cli.download", str(manifest), "--dest",
             str(work / "dicomhub"), "-q", "-j", w, "--layout", "flat"]
        )  # fmt: skip
        assert dicom_files(work / "dicomhub") == files
        if opts.with_nbia:
            results["dicomhub-nbia"] = measure(
                [sys.executable, "-m", "dicomhub.cli.download", str(manifest), "--dest",
                 str(work / "dicomhub-nbia"), "-q", "-j", w, "--layout", "flat", "--nbia-only"]
            )  # fmt: skip
            assert dicom_files(work / "dicomhub-nbia") == files
        results["raw"] = measure(
            [sys.executable, "-c", RAW, base, str(manifest), str(work / "raw"), w, RAW_PATH]
        )
        zips_ok(work / "raw", len(uids))
        results["endpoint"] = measure(
            [sys.executable, "-c", RAW, base, str(manifest), str(work / "endpoint"), w,
             ENDPOINT_PATH]
        )  # fmt: skip
        zips_ok(work / "endpoint", len(uids))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(results, len(uids), files, nbytes, opts)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)


def report(
    results: dict[str, tuple[float, float]],
    series: int,
    files: int,
    nbytes: int,
    opts: argparse.Namespace,
) -> None:
    print(
        f"\n{series} series, {files} files, {nbytes / 1e6:.1f} MB of ZIPs; "
        f"{opts.workers} workers (tcia_utils: its default 10); one server process, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(f"{'client':<18}{'seconds':>9}{'series/s':>10}{'MB/s':>8}{'peak RSS MB':>13}")
    for name, (seconds, rss) in results.items():
        print(
            f"{name:<18}{seconds:>9.1f}{series / seconds:>10.0f}"
            f"{nbytes / 1e6 / seconds:>8.1f}{rss:>13.0f}"
        )
    ours = results["dicomhub"][0]
    print(
        "\n"
        + textwrap.dedent(
            f"""\
            dicomhub vs tcia_utils: {results["tcia_utils"][0] / ours:.2f}x faster (goal >= 3x)
            dicomhub vs raw limit:  {results["raw"][0] / ours:.0%} of raw speed (goal >= 80%)
            dicomhub vs endpoint:   {results["endpoint"][0] / ours:.0%} of what a client that
                                    only saves getImageWithMD5Hash answers gets from this server
            dicomhub peak RSS:      {results["dicomhub"][1]:.0f} MB (goal < 250 MB)
            tcia_utils on dicomhub: {results["tcia_utils-static"][0] / results["tcia_utils"][0]:.0%}
                                    of its speed on the same ZIPs as static files"""
        )
    )
    if "dicomhub-nbia" in results:
        nbia = results["dicomhub-nbia"][0]
        print(
            f"dicomhub --nbia-only:   {results['tcia_utils'][0] / nbia:.2f}x tcia_utils, "
            f"{results['raw'][0] / nbia:.0%} of raw (the fallback for NBIA servers)"
        )


if __name__ == "__main__":
    main()
