"""Intake throughput: dicomhub against Orthanc, same corpus, same client, same run.

Usage: python bench/intake_bench.py [--instances N] [--rounds R] [--batch 50] [--json OUT]
       [--ways stow,cstore] [--servers dicomhub-sqlite,dicomhub-postgresql]

Writes N synthetic CT instances (512x512 int16, explicit VR little endian, a few
patients and series, unique UIDs), then stores the whole corpus, each time into a
fresh, empty server:

* STOW-RS, ``--batch`` instances per ``multipart/related`` request, one client;
* C-STORE with dcmtk ``storescu`` in one association (``TCP_NODELAY=1`` for storescu
  and for Orthanc; dicomhub's listener sets it itself);

into Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``, SQLite index), dicomhub with
its embedded default (SQLite, filesystem store) and dicomhub on PostgreSQL (fsync and
synchronous commit on).  Orthanc 1.10 cannot bind to 127.0.0.1 only, so the whole
benchmark re-runs itself inside a private network namespace holding only loopback
(``unshare -n``); nothing it starts is reachable from outside.  Rounds interleave the
servers; the median of each is reported with dicomhub/Orthanc ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INSIDE = "DICOMHUB_BENCH_NETNS"
ORTHANC_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
SECRET = "intake-bench-secret-key-0123456789"
COLLECTION, SITE, PEER = "BENCH", "SITE-1", "BENCHSCU"


# -- corpus ---------------------------------------------------------------------------


def make_corpus(folder: Path, count: int, seed: int = 7) -> list[Path]:
    """``count`` CT files of 512x512 int16 pixels in a handful of patients and series."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(-1000, 2000, size=(512, 512), dtype=np.int16)
    files, series_uid, study_uid, frame_uid = [], "", "", ""
    for i in range(count):
        if i % 100 == 0:
            study_uid = generate_uid()
        if i % 50 == 0:
            series_uid, frame_uid = generate_uid(), generate_uid()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = f"BENCH-{i // 100:04d}"
        ds.PatientName = f"Bench^Patient{i // 100}"
        ds.PatientSex = "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240115"
        ds.StudyTime = "101500"
        ds.StudyID, ds.AccessionNumber = "1", f"ACC{i // 100}"
        ds.Modality, ds.BodyPartExamined = "CT", "CHEST"
        ds.Manufacturer, ds.StudyDescription = "ACME", "CT CHEST"
        ds.SeriesDescription, ds.SeriesNumber = "AXIAL", 1 + (i // 50) % 2
        ds.InstanceNumber = 1 + i % 50
        ds.ClinicalTrialProtocolID, ds.ClinicalTrialSiteID = COLLECTION, SITE
        ds.ImagePositionPatient = [0.0, 0.0, -1.25 * (i % 50)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = frame_uid
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], "1.25"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
        ds.PixelData = np.roll(pixels, i).tobytes()
        path = folder / f"{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


# -- helpers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock, suppress(OSError):
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- servers --------------------------------------------------------------------------


class Target:
    """A freshly started, empty server: where to STOW and where to C-STORE."""

    name: str
    stow_url: str
    headers: dict[str, str]
    dimse_port: int
    called_aet: str

    def count(self) -> int:
        raise NotImplementedError


@contextmanager
def orthanc(work: Path) -> Iterator[Target]:
    http_port, dicom_port = free_port(), free_port()
    storage = work / "orthanc"
    storage.mkdir()
    config = {
        "Name": "bench",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "Plugins": [ORTHANC_PLUGIN],
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StorageCompression": False,
        "ConcurrentJobs": 2,
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "TCP_NODELAY": "1"}
    log = (work / "orthanc.log").open("wb")
    proc = subprocess.Popen(["Orthanc", str(path)], env=env, stdout=log, stderr=log)
    try:
        wait_http(f"http://127.0.0.1:{http_port}/system", proc)
        target = Target()
        target.name = "orthanc"
        target.stow_url = f"http://127.0.0.1:{http_port}/dicom-web/studies"
        target.headers = {}
        target.dimse_port, target.called_aet = dicom_port, "ORTHANC"

        def count() -> int:
            stats = httpx.get(f"http://127.0.0.1:{http_port}/statistics", timeout=30).json()
            return int(stats["CountInstances"])

        target.count = count  # type: ignore[method-assign]
        yield target
    finally:
        stop(proc)
        log.close()


def dicomhub_env(work: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    env.update(
        DICOMHUB_DATA_DIR=str(work / "var"),
        DICOMHUB_INTAKE_DATABASE_URL=db_url,
        DICOMHUB_PUBLIC_DATABASE_URL=db_url,
        DICOMHUB_SECRET_KEY=SECRET,
        DICOMHUB_LOG_LEVEL="WARNING",
    )
    return env


def prepare_dicomhub(env: dict[str, str]) -> str:
    """Migrate, register the site (no provenance demanded) and the peer; a submitter token."""
    run = [sys.executable, "-m", "dicomhub"]
    quiet: dict[str, Any] = {"env": env, "check": True, "capture_output": True}
    subprocess.run([*run, "db", "upgrade"], **quiet)
    subprocess.run([*run, "intake", "sites", "add", COLLECTION, SITE,
                    "--no-require-deid-provenance"], **quiet)  # fmt: skip
    subprocess.run([*run, "intake", "peers", "add", PEER, COLLECTION, SITE], **quiet)
    subprocess.run([*run, "users", "add", "bench-site", "--no-password", "--role", "submitter",
                    "--collection", COLLECTION, "--site", SITE], **quiet)  # fmt: skip
    made = subprocess.run([*run, "tokens", "create", "bench-site", "--role", "submitter",
                           "--collection", COLLECTION, "--site", SITE], **quiet)  # fmt: skip
    return made.stdout.decode().strip().splitlines()[-1].strip()


@contextmanager
def dicomhub(work: Path, db_url: str, name: str) -> Iterator[Target]:
    env = dicomhub_env(work, db_url)
    token = prepare_dicomhub(env)
    http_port, dicom_port = free_port(), free_port()
    logs = (work / f"{name}.log").open("wb")
    serve = [sys.executable, "-m", "dicomhub", "serve"]
    web = subprocess.Popen([*serve, "intake", "--port", str(http_port)], env=env,
                           stdout=logs, stderr=logs)  # fmt: skip
    dimse = subprocess.Popen([*serve, "dimse", "--port", str(dicom_port)], env=env,
                             stdout=logs, stderr=logs)  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{http_port}/healthz", web)
        wait_port(dicom_port)
        target = Target()
        target.name = name
        target.stow_url = f"http://127.0.0.1:{http_port}/dicomweb/studies"
        target.headers = {"Authorization": f"Bearer {token}"}
        target.dimse_port, target.called_aet = dicom_port, "DICOMHUB"

        def count() -> int:
            from sqlalchemy import create_engine, text

            from dicomhub.core.db.engine import normalise_url

            engine = create_engine(normalise_url(db_url))
            with engine.connect() as connection:
                found = connection.execute(text("SELECT count(*) FROM instance")).scalar_one()
            engine.dispose()
            return int(found)

        target.count = count  # type: ignore[method-assign]
        yield target
    finally:
        stop(web)
        stop(dimse)
        logs.close()


# -- the two ways in ------------------------------------------------------------------


def stow_all(target: Target, files: list[Path], batch: int) -> float:
    """Seconds to STOW every file, ``batch`` per request, one client."""
    boundary = "bench-" + secrets.token_hex(8)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    bodies = []
    for start in range(0, len(files), batch):
        parts = [head + f.read_bytes() + b"\r\n" for f in files[start : start + batch]]
        bodies.append(b"".join(parts) + f"--{boundary}--\r\n".encode())
    headers = {**target.headers, "Content-Type": content_type, "Accept": "application/dicom+json"}
    with httpx.Client(timeout=600) as client:
        began = time.perf_counter()
        for body in bodies:
            response = client.post(target.stow_url, content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(
                    f"{target.name} STOW: HTTP {response.status_code} {response.text[:400]}"
                )
        return time.perf_counter() - began


def cstore_all(target: Target, files: list[Path], folder: Path) -> float:
    """Seconds for one storescu association carrying every file."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    command = ["storescu", "-aet", PEER, "-aec", target.called_aet, "127.0.0.1",
               str(target.dimse_port), "+sd", str(folder)]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{target.name} storescu: {done.stderr.decode()[-500:]}")
    return elapsed


# -- PostgreSQL ---------------------------------------------------------------------------


@contextmanager
def postgres() -> Iterator[str]:
    """A throw-away PostgreSQL on loopback with fsync and synchronous commit back on."""
    from sqlalchemy import create_engine, text
    from tests.fixtures import servicelib

    handle = servicelib.start_postgres()
    url = handle.env[servicelib.ENV_PG_URL]
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            connection.execute(text(f"ALTER SYSTEM SET {name} = on"))
        connection.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()
    try:
        yield url
    finally:
        servicelib._stop_postgres(handle)
        shutil.rmtree(handle.workdir, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "bench_" + secrets.token_hex(6)
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


# -- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    results: dict[str, dict[str, list[float]]] = {}
    try:
        corpus = scratch / "corpus"
        corpus.mkdir()
        files = make_corpus(corpus, args.instances)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        print(f"corpus: {len(files)} instances, {megabytes:.0f} MB", flush=True)
        with postgres() as pg_admin:
            for round_ in range(args.rounds):
                for server in ("orthanc", *args.servers):
                    for way in args.ways:
                        work = Path(tempfile.mkdtemp(dir=scratch))
                        rate = one(server, way, work, files, corpus, pg_admin, args.batch)
                        results.setdefault(server, {}).setdefault(way, []).append(rate)
                        print(f"round {round_ + 1} {server:20} {way:6} {rate:7.1f}/s", flush=True)
                        shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report(results, args)


def one(
    server: str, way: str, work: Path, files: list[Path], corpus: Path, pg_admin: str, batch: int
) -> float:
    if server == "orthanc":
        context = orthanc(work)
    elif server == "dicomhub-sqlite":
        context = dicomhub(work, f"sqlite:///{work / 'intake.sqlite3'}", server)
    else:
        context = dicomhub(work, fresh_database(pg_admin), server)
    with context as target:
        elapsed = (
            stow_all(target, files, batch) if way == "stow" else cstore_all(target, files, corpus)
        )
        stored = target.count()
    if stored != len(files):
        raise RuntimeError(f"{server} {way}: {stored} of {len(files)} instances stored")
    return len(files) / elapsed


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> dict[str, Any]:
    medians = {s: {w: statistics.median(r) for w, r in ways.items()} for s, ways in results.items()}
    print(f"\ninstances/s, median of {args.rounds} round(s); ratio = dicomhub / Orthanc")
    print(f"{'server':22}{'STOW-RS (' + str(args.batch) + '/req)':>20}{'ratio':>8}"
          f"{'C-STORE storescu':>20}{'ratio':>8}")  # fmt: skip
    base = medians["orthanc"]
    summary: dict[str, Any] = {"instances": args.instances, "rounds": args.rounds,
                               "batch": args.batch, "servers": {}}  # fmt: skip
    nan = float("nan")
    for server, values in medians.items():
        ratios = {way: values[way] / base[way] for way in values}
        print(f"{server:22}{values.get('stow', nan):20.1f}{ratios.get('stow', nan):8.2f}"
              f"{values.get('cstore', nan):20.1f}{ratios.get('cstore', nan):8.2f}")  # fmt: skip
        figures: dict[str, Any] = {"runs": results[server]}
        for way in values:
            figures[f"{way}_per_s"] = round(values[way], 1)
            figures[f"{way}_ratio"] = round(ratios[way], 2)
        summary["servers"][server] = figures
    return summary


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--ways", type=_names, default=["stow", "cstore"],
                        help="Comma-separated: stow, cstore (default both).")  # fmt: skip
    servers = ["dicomhub-sqlite", "dicomhub-postgresql"]
    parser.add_argument("--servers", type=_names, default=servers,
                        help="Comma-separated dicomhub variants run beside Orthanc.")  # fmt: skip
    args = parser.parse_args()
    for tool in ("Orthanc", "storescu", "unshare", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install orthanc orthanc-dicomweb dcmtk)")
    if os.environ.get(INSIDE) != "1":
        inner = " ".join(f"'{a}'" for a in [sys.executable, __file__, *sys.argv[1:]])
        env = {**os.environ, INSIDE: "1"}
        command = ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {inner}"]
        sys.exit(subprocess.run(command, env=env, check=False).returncode)
    summary = run(args)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
