"""`dicomhub jobs`: list, show, watch and cancel bulk jobs; ``run-test`` checks the wiring.

Jobs live in the database of the side that runs them, so every command takes
``--side intake|public`` (intake by default).  :func:`run_with_progress` is the
progress bar other commands (promote, re-index, ...) reuse for the jobs they submit.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dicomhub.core.jobs import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    JobInfo,
    JobService,
    job_env,
    make_executor,
)
from dicomhub.settings import load_settings

app = typer.Typer(no_args_is_help=True)


def console() -> Console:
    """A console for this invocation (sized from the terminal or ``COLUMNS`` now)."""
    return Console()


STATE_STYLES = {
    "queued": "cyan",
    "running": "blue",
    "cancelling": "yellow",
    SUCCEEDED: "green",
    FAILED: "red",
    CANCELLED: "yellow",
}


class Side(enum.StrEnum):
    """Which database's jobs."""

    intake = "intake"
    public = "public"


SideOption = Annotated[Side, typer.Option("--side", help="Whose jobs: intake or public.")]
JobId = Annotated[str, typer.Argument(help="The job's id.")]


def open_service(side: Side, *, run: bool = False) -> JobService:
    """A service on the side's database; with ``run``, on the configured executor.

    Reading jobs needs only the database URL; running them builds the side's
    settings view (which needs the instance secret) for the executor and env.
    """
    settings = load_settings()
    if not run:
        return JobService(settings.intake_db if side is Side.intake else settings.public_db)
    view = settings.intake() if side is Side.intake else settings.public()
    executor = make_executor(view.job_executor, view.dask_scheduler)
    return JobService(view.database_url, executor, env=job_env(view))


def styled(state: str) -> str:
    """The state in its colour."""
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def progress_text(job: JobInfo) -> str:
    """``done/total`` (or ``done``) of a job."""
    if job.progress_total is None:
        return str(job.progress_done)
    return f"{job.progress_done}/{job.progress_total}"


def run_with_progress(
    service: JobService,
    job_id: str,
    *,
    out: Console | None = None,
    poll: float = 0.25,
    cancel_on_interrupt: bool = False,
) -> JobInfo:
    """Show a progress bar for a job until it finishes, then one line saying how it ended.

    Polls the job row, so it works for a job running anywhere.  With
    ``cancel_on_interrupt``, Ctrl-C asks the job to cancel and keeps watching
    until it stops; otherwise Ctrl-C just stops watching (the job goes on).
    """
    out = out or console()
    job = service.get(job_id)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task(f"{job.kind} {job.id[:8]}", total=job.progress_total, message="")
        while not job.finished:
            try:
                time.sleep(poll)
            except KeyboardInterrupt:
                if not cancel_on_interrupt:
                    raise
                service.cancel(job_id)
            job = service.get(job_id)
            bar.update(
                task,
                completed=job.progress_done,
                total=job.progress_total,
                message=f"{job.state} {job.message}",
            )
    _print_outcome(out, job)
    return job


def _print_outcome(out: Console, job: JobInfo) -> None:
    line = f"job {job.id} {styled(job.state)}"
    if job.error:
        line += f": {job.error}"
    out.print(line)


@app.command("list")
def list_jobs(
    side: SideOption = Side.intake,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List jobs, newest first."""
    with open_service(side) as service:
        jobs = service.list(state=state, kind=kind, limit=limit)
    table = Table()
    # Ids and kinds are what people copy into the next command: never cut them.
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("kind", no_wrap=True)
    for name in ("state", "progress", "by", "created", "message"):
        table.add_column(name)
    for job in jobs:
        table.add_row(
            job.id,
            job.kind,
            styled(job.state),
            progress_text(job),
            job.created_by,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            job.error or job.message,
        )
    console().print(table)


@app.command()
def show(
    job_id: JobId,
    side: SideOption = Side.intake,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Show one job: parameters, progress, result or error."""
    with open_service(side) as service:
        job = service.get(job_id)
    if as_json:
        console().print_json(json.dumps(job.to_dict()))
        return
    table = Table.grid(padding=(0, 2))
    for name, value in job.to_dict().items():
        if name == "state":
            value = styled(job.state)
        elif isinstance(value, dict):
            value = json.dumps(value)
        table.add_row(f"[bold]{name}[/]", "" if value is None else str(value))
    console().print(table)


@app.command()
def watch(
    job_id: JobId,
    side: SideOption = Side.intake,
    cancel: Annotated[bool, typer.Option(help="Cancel the job on Ctrl-C.")] = False,
) -> None:
    """Follow a job's progress until it finishes; exit status 1 if it failed."""
    with open_service(side) as service:
        job = run_with_progress(service, job_id, cancel_on_interrupt=cancel)
    if job.state == FAILED:
        raise typer.Exit(1)


@app.command()
def cancel(job_id: JobId, side: SideOption = Side.intake) -> None:
    """Cancel a job: at once if queued, at its next check if running."""
    with open_service(side) as service:
        job = service.cancel(job_id)
    console().print(f"job {job.id} {styled(job.state)}")


@app.command("run-test")
def run_test(
    side: SideOption = Side.intake,
    count: Annotated[int, typer.Option(help="Steps to count.")] = 20,
    delay: Annotated[float, typer.Option(help="Seconds per step.")] = 0.1,
    fail_at: Annotated[int | None, typer.Option(help="Fail at this step.")] = None,
) -> None:
    """Run the built-in counting job on the configured executor (checks the wiring)."""
    params: dict[str, int | float] = {"count": count, "delay": delay}
    if fail_at is not None:
        params["fail_at"] = fail_at
    service = open_service(side, run=True)
    try:
        job_id = service.submit("sleep_count", params, created_by="cli")
        job = run_with_progress(service, job_id, cancel_on_interrupt=True)
    finally:
        service.executor.close()
        service.close()
    if job.state != SUCCEEDED:
        raise typer.Exit(1)
