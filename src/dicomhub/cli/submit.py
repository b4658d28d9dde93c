"""`dicomhub submit`: the site's side: de-identify with a kit, send, verify, resume.

``run`` does everything that is left for a kit in a work folder; run it again after an
interruption and it resumes. ``listen`` receives C-STORE from the site's PACS into the
same work folder and runs the same pipeline over what arrives. ``quarantine`` lists what
stayed at the site and why; ``status`` shows the stages; ``idmap-template`` writes the
ID map to fill in.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dicomhub.errors import ArchiveError, BadRequest, ConfigurationError
from dicomhub.submit import idmap as idmap_mod
from dicomhub.submit import listen
from dicomhub.submit.kit import Kit, load_kit
from dicomhub.submit.pipeline import Options, Pipeline, state_folder
from dicomhub.submit.report import Summary
from dicomhub.submit.state import StateDB
from dicomhub.submit.upload import StowClient, make_client
from dicomhub.submit.verify import fetch_inventory

LOGGER = logging.getLogger(__name__)
app = typer.Typer(no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

KitOption = Annotated[Path, typer.Option("--kit", "-k", help="The kit file from the archive.")]
WorkOption = Annotated[
    Path | None,
    typer.Option("--work", help="Folder for the state database, outbox, mappings and report."),
]
WorkersOption = Annotated[
    int, typer.Option("--workers", "-j", min=1, help="De-identification processes.")
]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Instances per request.")]
RetriesOption = Annotated[int, typer.Option("--retries", min=0, help="Retries per batch.")]
#: One de-identification process per core unless told otherwise.
DEFAULT_WORKERS = max(1, os.cpu_count() or 1)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ArchiveError as exc:
        err_console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from exc


def _work(kit: Kit, work: Path | None) -> Path:
    return work or Path(f"dicomhub-submit-{kit.collection}-{kit.site}")


@app.command("run")
def run_command(
    kit_file: KitOption,
    idmap: Annotated[Path, typer.Option("--idmap", "-m", help="The filled-in ID map CSV.")],
    folders: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders (or files) to submit; none: what `listen` received."),
    ] = None,
    work: WorkOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    batch_size: BatchSizeOption = 50,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="De-identify into --out and send nothing.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder of a dry run.")] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep de-identified files after verification.")
    ] = False,
    retries: RetriesOption = 5,
    backoff: Annotated[
        float, typer.Option("--backoff", min=0, help="First retry delay (s).")
    ] = 1.0,
) -> None:
    """De-identify FOLDERS with the kit and send them; resumes where a previous run stopped."""
    with _errors():
        if dry_run and out is None:
            raise BadRequest("--dry-run needs --out DIR for the de-identified files")
        kit = load_kit(kit_file)
        patients = idmap_mod.load_idmap(idmap)
        options = Options(
            folders=list(folders or []), work=_work(kit, work), workers=workers,
            batch_size=batch_size, dry_run=dry_run, out=out, keep_outputs=keep,
        )  # fmt: skip
        _adopt_received(kit, options)
        client = None
        if not dry_run:
            body = kit.body
            client = make_client(
                body.intake_url, body.credential.get_secret_value(), body.ca_bundle
            )
        try:
            summary = _run(kit, patients, options, client, retries, backoff)
        finally:
            if client is not None:
                client.close()
    _print_summary(summary, options)
    if not summary.complete:
        raise typer.Exit(2)


def _adopt_received(kit: Kit, options: Options) -> None:
    """Queue what a listener stored in this work folder but was killed before recording."""
    spool = listen.spool_folder(options.work)
    if not options.folders and (options.dry_run or not spool.is_dir()):
        where = "" if options.dry_run else f" (`submit listen` received nothing in {options.work})"
        raise BadRequest(f"give the folders to submit{where}")
    if options.dry_run or not spool.is_dir():
        return
    state = StateDB(options.work / "state.sqlite3")
    try:
        state.bind(kit.kit_id, kit.recipe().recipe_hash())
        listen.adopt(spool, state)
    finally:
        state.close()


def _run(
    kit: Kit, patients: idmap_mod.IdMap, options: Options, client: object,
    retries: int, backoff: float,
) -> Summary:  # fmt: skip
    import httpx

    stow = inventory = None
    if isinstance(client, httpx.Client):
        stow = StowClient(client, retries=retries, backoff=backoff)
        http = client

        def inventory() -> dict[str, str]:
            return fetch_inventory(http).sha256

    with Progress(
        TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=False,
    ) as bars:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def hook(stage: str, done: int, more: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=0)
            task = tasks[stage]
            total = (bars.tasks[task].total or 0) + more
            bars.update(task, advance=done, total=total)

        pipeline = Pipeline(kit, patients, options, stow=stow, inventory=inventory, progress=hook)
        try:
            return pipeline.run()
        except ArchiveError:
            _print_summary(pipeline.summary, options)
            raise


def _print_summary(summary: Summary, options: Options) -> None:
    table = Table(title=f"{summary.collection}/{summary.site} ({summary.kit_id})")
    table.add_column("stage")
    table.add_column("files", justify="right")
    for stage in ("seen", "skipped", "quarantined", "duplicate", "deidentified", "sent",
                  "verified", "rejected"):  # fmt: skip
        if summary.stages.get(stage):
            table.add_row(stage, str(summary.stages[stage]))
    for reason, count in sorted(summary.quarantined.items()):
        table.add_row(f"  quarantined: {escape(reason)}", str(count))
    for reason, count in sorted(summary.rejected.items()):
        table.add_row(f"  rejected: {escape(reason)}", str(count))
    for rule, count in sorted(summary.pixels_cleaned.items()):
        table.add_row(f"  pixels cleaned: {escape(rule)}", str(count))
    console.print(table)
    if summary.not_dicom:
        console.print(f"{len(summary.not_dicom)} file(s) are not DICOM and were not sent:")
        for path in summary.not_dicom[:20]:
            console.print(f"  {escape(path)}", soft_wrap=True)
    rate = summary.deidentified_this_run / summary.deid_seconds if summary.deid_seconds else 0.0
    console.print(
        f"this run: {summary.deidentified_this_run} de-identified ({rate:.0f}/s), "
        f"{summary.sent_this_run} sent ({summary.bytes_sent / 1e6:.1f} MB), "
        f"{summary.resent} resent, in {summary.seconds:.1f}s"
    )
    folder = state_folder(options)
    console.print(f"report and mapping files (keep them at the site): {escape(str(folder))}")
    if summary.complete:
        done = "dry run complete" if summary.dry_run else "submission complete and verified"
        console.print(f"[green]{done}[/green]")
    else:
        console.print("[yellow]not complete: run the same command again to resume[/yellow]")


def _open_state(kit_file: Path, work: Path | None, out: Path | None) -> StateDB:
    kit = load_kit(kit_file)
    options = Options(folders=[], work=_work(kit, work), dry_run=out is not None, out=out)
    path = state_folder(options) / "state.sqlite3"
    if not path.exists():
        raise BadRequest(f"no submission state in {path.parent}; run `dicomhub submit run` first")
    return StateDB(path)


@app.command("quarantine")
def quarantine_command(
    kit_file: KitOption,
    work: WorkOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="List a dry run's quarantine instead.")
    ] = None,
) -> None:
    """List the files kept at the site, each with the reason."""
    with _errors():
        state = _open_state(kit_file, work, out)
        try:
            rows = state.listing("quarantined")
        finally:
            state.close()
    table = Table("file", "reason", "detail")
    for path, reason, detail in rows:
        table.add_row(escape(path), escape(reason), escape(detail))
    console.print(table)
    console.print(f"{len(rows)} file(s) quarantined")


@app.command("status")
def status_command(kit_file: KitOption, work: WorkOption = None) -> None:
    """How many files are at each stage."""
    with _errors():
        state = _open_state(kit_file, work, None)
        try:
            counts = state.counts()
        finally:
            state.close()
    table = Table("stage", "files")
    for stage, count in sorted(counts.items()):
        table.add_row(stage, str(count))
    console.print(table)


@app.command("idmap-template")
def idmap_template_command(
    kit_file: KitOption,
    out: Annotated[Path, typer.Argument(help="CSV file to write.")],
    rows: Annotated[int, typer.Option("--rows", min=1, help="Suggested archive IDs.")] = 10,
) -> None:
    """Write the ID map to fill in: your PatientIDs in the first column."""
    with _errors():
        kit = load_kit(kit_file)
        try:
            idmap_mod.write_template(out, kit, rows)
        except FileExistsError as exc:
            raise BadRequest(f"{out} exists; choose another file") from exc
    console.print(f"wrote {escape(str(out))}; fill in submitter_patient_id (it stays here)")


@app.command("check-kit")
def check_kit_command(kit_file: Annotated[Path, typer.Argument(help="The kit file.")]) -> None:
    """Check a kit (seal, expiry, recipe) and show what it will do."""
    with _errors():
        kit = load_kit(kit_file)
    recipe = kit.recipe()
    console.print(f"kit {escape(kit.kit_id)}: {escape(kit.collection)}/{escape(kit.site)}")
    console.print(
        f"  intake {escape(kit.body.intake_url)}, expires {kit.body.expires_at or 'never'}"
    )
    console.print(f"  date offset {recipe.date_offset_days} days, UID root {recipe.uid_root}")
    console.print(f"  options: {', '.join(o.meaning for o in recipe.options()) or 'Basic only'}")
    for rule in recipe.clean_pixels:
        boxes = ", ".join(f"{w}x{h} at ({x}, {y})" for x, y, w, h in rule.regions)
        console.print(f"  clean pixel data of {escape(rule.label())}: blank {boxes}")
    console.print(f"  recipe hash {recipe.recipe_hash()}")


# -- listen: C-STORE from the site's PACS -------------------------------------------------

#: Every interface: the PACS sending to the listener is another host on the site's network.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


@app.command("listen")
def listen_command(
    kit_file: KitOption,
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port.")],
    ae_title: Annotated[
        str, typer.Option("--ae-title", help="This listener's AE title.")
    ] = "DICOMHUB_SUBMIT",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = ALL_INTERFACES,
    idmap: Annotated[
        Path | None,
        typer.Option(
            "--idmap",
            "-m",
            help="The ID map; without it instances are only received, for `submit run` later.",
        ),
    ] = None,
    calling: Annotated[
        list[str] | None,
        typer.Option("--calling-ae", help="Accept only these calling AE titles (repeat)."),
    ] = None,
    work: WorkOption = None,
    workers: WorkersOption = DEFAULT_WORKERS,
    batch_size: BatchSizeOption = 50,
    settle: Annotated[
        float, typer.Option("--settle", min=0, help="Quiet seconds before a cycle starts.")
    ] = 2.0,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep received and de-identified files once verified.")
    ] = False,
    retries: RetriesOption = 5,
) -> None:
    """Receive C-STORE from a PACS and de-identify, send and verify what arrives."""
    with _errors():
        if not 0 < len(ae_title.strip()) <= 16:
            raise BadRequest("an AE title has 1 to 16 characters")
        kit = load_kit(kit_file)
        patients = idmap_mod.load_idmap(idmap) if idmap is not None else None
        options = Options(folders=[], work=_work(kit, work), workers=workers,
                          batch_size=batch_size, keep_outputs=keep)  # fmt: skip
        spool = listen.Spool(options.work, kit)
        try:
            _listen(spool, kit, patients, options, (ae_title, host, port, calling or []),
                    settle=settle, retries=retries)  # fmt: skip
        finally:
            spool.close()


def _listen(
    spool: listen.Spool, kit: Kit, patients: idmap_mod.IdMap | None, options: Options,
    scp: tuple[str, str, int, list[str]], *, settle: float, retries: int,
) -> None:  # fmt: skip
    recovered = spool.recover()
    if recovered:
        console.print(f"{recovered} received instance(s) from an earlier listener were queued")
    server = _start_scp(spool, *scp)
    bound = server.server_address
    console.print(f"listening as {escape(scp[0])} on {bound[0]}:{bound[1]}", highlight=False)
    client = None
    runner: listen.Runner | None = None
    stopped = threading.Event()
    if patients is not None:
        body = kit.body
        client = make_client(body.intake_url, body.credential.get_secret_value(), body.ca_bundle)
        stow, http = StowClient(client, retries=retries), client

        def run_once() -> Summary:
            pipeline = Pipeline(kit, patients, options, stow=stow,
                                inventory=lambda: fetch_inventory(http).sha256)  # fmt: skip
            return pipeline.run()

        runner = listen.Runner(spool, run_once, settle=settle, keep_sources=options.keep_outputs)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: object) -> None:
        for sig, handler in previous.items():  # a second signal ends the process at once
            signal.signal(sig, handler)
        stopped.set()
        if runner is not None:
            runner.stop()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        if runner is not None:
            runner.serve()
        else:
            console.print("no --idmap: receiving only; run `dicomhub submit run` to send")
            stopped.wait()
    finally:
        server.shutdown()
        if client is not None:
            client.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print(f"stopped: {spool.received} instance(s) received, {spool.refused} refused")
    if runner is not None and runner.last is not None:
        _print_summary(runner.last, options)


def _start_scp(spool: listen.Spool, ae_title: str, host: str, port: int,
               calling: list[str]) -> Any:  # fmt: skip
    """The DIMSE edge: pynetdicom in, :meth:`listen.Spool.store` status out."""
    try:
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ConfigurationError(
            "`submit listen` needs pynetdicom: pip install 'pynetdicom>=3,<4'"
        ) from exc
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # not a line per instance
    ae = AE(ae_title=ae_title.strip())
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax), ALL_TRANSFER_SYNTAXES)
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
    if calling:
        ae.require_calling_aet = [title.strip() for title in calling]

    def on_open(event: Any) -> None:
        # pynetdicom never sets TCP_NODELAY: without it each C-STORE response waits on
        # Nagle's algorithm (~40 ms).
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_echo(event: Any) -> int:
        return listen.SUCCESS

    def on_store(event: Any) -> int:
        try:
            uid = str(event.request.AffectedSOPInstanceUID or "")
            return spool.store(event.encoded_dataset(include_meta=True), uid)
        except Exception:  # a handler answers, it never raises into pynetdicom
            LOGGER.exception("C-STORE failed")
            return listen.PROCESSING_FAILURE

    handlers: list[Any] = [(evt.EVT_CONN_OPEN, on_open), (evt.EVT_C_ECHO, on_echo),
                (evt.EVT_C_STORE, on_store)]  # fmt: skip
    try:
        return ae.start_server((host, port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
