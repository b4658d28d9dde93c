"""`dicomhub promote`: publish an intake collection (or some of its series) as a release.

The promotion is a ``promote`` job in the public database's job table, run on
the configured executor (or the one ``--executor`` names) and followed with the
jobs' progress bar; ``dicomhub jobs show ID --side public`` shows it later.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from dicomhub.cli.jobs import run_with_progress
from dicomhub.core.jobs import FAILED, SUCCEEDED, JobInfo, JobService, make_executor
from dicomhub.promote import JOB_KIND, PromoteParams
from dicomhub.promote.context import PromotionContext, promotion_env
from dicomhub.settings import load_settings


def promote(
    collection: Annotated[str, typer.Option("--collection", "-c", help="Intake collection.")],
    series: Annotated[
        list[str] | None,
        typer.Option("--series", "-s", help="Only this SeriesInstanceUID (repeatable)."),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="inprocess or dask (default: DICOMHUB_JOB_EXECUTOR)."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Instances processed at once.")] = 4,
    recipe: Annotated[
        Path | None, typer.Option(help="A curated second-pass recipe (TOML).")
    ] = None,
) -> None:
    """Promote accepted intake instances to the public archive as one checked release."""
    settings = load_settings()
    kind: Literal["inprocess", "dask"] = settings.job_executor
    if executor is not None:
        if executor not in ("inprocess", "dask"):
            raise typer.BadParameter("use inprocess or dask", param_hint="--executor")
        kind = "dask" if executor == "dask" else "inprocess"
    # Fail here, with one line, if either side is not usable.
    PromotionContext.from_settings(settings).close()
    params = PromoteParams(
        collection=collection,
        series=tuple(series or ()),
        workers=workers,
        actor=getpass.getuser(),
        recipe_toml=recipe.read_text() if recipe is not None else None,
    )
    out = Console()
    runner = make_executor(kind, settings.dask_scheduler)
    try:
        with JobService(settings.public_db, runner, env=promotion_env(settings)) as service:
            job_id = service.submit(JOB_KIND, params.to_dict(), created_by=params.actor)
            job = run_with_progress(service, job_id, out=out, cancel_on_interrupt=True)
    finally:
        runner.close()
    if job.state == SUCCEEDED:
        _print_release(out, job)
    if job.state != SUCCEEDED:
        raise typer.Exit(1 if job.state == FAILED else 2)


def _print_release(out: Console, job: JobInfo) -> None:
    result = job.result or {}
    table = Table(title=f"release {result.get('release_id')} of {result.get('collection')}")
    table.add_column("")
    table.add_column("intake", justify="right")
    table.add_column("public", justify="right")
    intake, public = result.get("intake_counts", {}), result.get("public_counts", {})
    for name in ("patients", "studies", "series", "instances"):
        table.add_row(name, str(intake.get(name, "")), str(public.get(name, "")))
    out.print(table)
    if result.get("opened") == "unchanged":
        out.print("nothing changed since this release; nothing was written")
    out.print(f"manifest: {result.get('manifest_key')} sha256 {result.get('manifest_sha256')}")
