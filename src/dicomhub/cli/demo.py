"""`dicomhub demo`: set up an embedded instance, run it, and load a sample collection.

The sample goes the way a real site's data goes, through the same commands a
user runs: a submitter account and token, a signed kit, `dicomhub submit run`
(de-identification on the "site", HTTPS STOW-RS to the running intake,
verification), then `dicomhub promote` to the public archive.  It runs in a
background thread once the servers answer, so the URLs are printed at once.
"""

from __future__ import annotations

import csv
import logging
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from sqlalchemy import func, select

from dicomhub.cli.serve import run
from dicomhub.core.db import Collection, Series, make_engine, make_sessionmaker
from dicomhub.core.db.migrate import upgrade
from dicomhub.core.tls import ensure_self_signed
from dicomhub.settings import Settings, load_settings

LOGGER = logging.getLogger(__name__)
console = Console()

COLLECTION = "DEMO-CT"
SITE = "DEMO-SITE"
SUBMITTER = "demo-submitter"


def prepare(settings: Settings, patients: int) -> Settings:
    """Migrate, make TLS keys, the UID root and the sample; return the settings to serve."""
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (settings.intake_tls_cert and settings.intake_tls_key):
        cert, key = ensure_self_signed(data_dir / "keys", settings.intake_host)
        settings = settings.model_copy(update={"intake_tls_cert": cert, "intake_tls_key": key})
    settings = settings.model_copy(update={"uid_root": settings.resolved_uid_root()})
    for name, url in (("intake", settings.intake_db), ("public", settings.public_db)):
        upgrade(url)
        console.print(f"[green]✓[/green] {name} database ready")
    sample_dir = data_dir / "sample"
    if not (sample_dir / "manifest.json").exists():
        from dicomhub.sample import make_sample

        manifest = make_sample(sample_dir, patients=patients, seed=0, small=True)
        console.print(f"[green]✓[/green] sample: {len(manifest.files)} files in {sample_dir}")
    return settings


def published(settings: Settings) -> int:
    """How many series of the demo collection the public side already holds."""
    engine = make_engine(settings.public_db)
    try:
        with make_sessionmaker(engine)() as session:
            query = (
                select(func.count(Series.id))
                .join(Collection, Collection.id == Series.collection_id)
                .where(Collection.name == COLLECTION)
            )
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DICOMHUB_DEMO="1",
        DICOMHUB_DATA_DIR=str(settings.resolved_data_dir),
        DICOMHUB_INTAKE_TLS_CERT=str(settings.intake_tls_cert),
        DICOMHUB_INTAKE_TLS_KEY=str(settings.intake_tls_key),
        DICOMHUB_UID_ROOT=str(settings.uid_root),
    )
    return env


def _dicomhub(settings: Settings, *args: str, stdin: str | None = None) -> str:
    """Run one `dicomhub` command as a user would; its output, or an error naming it."""
    done = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "dicomhub", *args],
        env=_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dicomhub {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _wait_for_intake(settings: Settings, timeout: float = 60.0) -> None:
    url = f"https://{settings.intake_host}:{settings.intake_port}/healthz"
    context = ssl.create_default_context(cafile=str(settings.intake_tls_cert))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, verify=context, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the intake did not answer at {url}")


def _idmap(sample_dir: Path, target: Path) -> None:
    """Map each sample patient to an archive ID, as a site fills in its template."""
    from dicomhub.sample import SampleManifest

    manifest = SampleManifest.read(sample_dir / "manifest.json")
    originals = sorted({entry.patient_id for entry in manifest.files})
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submitter_patient_id", "archive_patient_id", "archive_patient_name"])
        for number, original in enumerate(originals, start=1):
            archive_id = f"{COLLECTION}-{number:03d}"
            writer.writerow([original, archive_id, archive_id])


#: The options TCIA typically applies: dates shifted, not removed; sex, age, size and
#: scanner kept for research; descriptions cleaned rather than dropped.
DEMO_RECIPE = """\
[recipe]
retain_long_modified_dates = true
retain_patient_characteristics = true
retain_device_identity = true
retain_safe_private = true
clean_descriptors = true
"""


def _recipe(work: Path) -> Path:
    path = work / "recipe.toml"
    path.write_text(DEMO_RECIPE)
    return path


def load_sample(settings: Settings) -> None:
    """Submit the sample through the running intake and promote it (idempotent)."""
    work = settings.resolved_data_dir / "demo"
    work.mkdir(parents=True, exist_ok=True)
    kit = work / "kit.json"
    if not kit.exists():
        _dicomhub(
            settings,
            "users",
            "add",
            SUBMITTER,
            "--no-password",
            "--role",
            "submitter",
            "-c",
            COLLECTION,
            "-s",
            SITE,
        )
        token = _dicomhub(
            settings,
            "tokens",
            "create",
            SUBMITTER,
            "--role",
            "submitter",
            "-c",
            COLLECTION,
            "-s",
            SITE,
            "--name",
            "demo kit",
        ).strip()
        _dicomhub(
            settings,
            "kits",
            "create",
            "-c",
            COLLECTION,
            "-s",
            SITE,
            "--token",
            token,
            "--out",
            str(kit),
            "--body-part",
            "CHEST",
        )
        _idmap(settings.resolved_data_dir / "sample", work / "idmap.csv")
    _wait_for_intake(settings)
    console.print("[cyan]demo:[/cyan] submitting the sample to the intake over HTTPS …")
    _dicomhub(
        settings,
        "submit",
        "run",
        "--kit",
        str(kit),
        "--idmap",
        str(work / "idmap.csv"),
        "--work",
        str(work / "site"),
        str(settings.resolved_data_dir / "sample"),
    )
    console.print("[cyan]demo:[/cyan] promoting the accepted instances to the public archive …")
    _dicomhub(settings, "promote", "--collection", COLLECTION)
    console.print(
        f"[green]✓ demo:[/green] {COLLECTION} published ({published(settings)} series); "
        f"open http://{settings.public_host}:{settings.public_port}/"
    )


def _load_in_background(settings: Settings) -> threading.Thread:
    def work() -> None:
        try:
            load_sample(settings)
        except Exception as exc:  # the demo keeps serving; the failure is shown
            console.print(f"[red]demo: loading the sample failed:[/red] {exc}")

    thread = threading.Thread(target=work, name="demo-loader", daemon=True)
    thread.start()
    return thread


def demo(
    patients: Annotated[int, typer.Option(min=1, max=50, help="Sample patients.")] = 3,
    serve: Annotated[bool, typer.Option(help="Run the archive after setting up.")] = True,
) -> None:
    """Set up the embedded demo instance, load the sample and run it (Ctrl-C stops it)."""
    settings = prepare(load_settings(demo=True), patients)
    console.print(f"data folder: {settings.resolved_data_dir}")
    if not serve:
        return
    if published(settings) == 0:
        _load_in_background(settings)
    run(settings)
