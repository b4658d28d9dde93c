"""`dicomhub download SOURCE --dest DIR`: fetch series from a dicomhub or NBIA server.

SOURCE is a ``.tcia`` manifest, ``basket`` (the basket of the account whose
credential is given), a basket id (``/api/baskets/<id>/manifest.tcia``: the
owner's basket with the owner's token, or a shared one) or a collection name.
Run the same command again after an interruption and it fetches only what is
missing or failed.

This module imports nothing of the server side, so it works in a base install
(``pip install dicomhub``); it is also the ``dicomhub-download`` console script.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from dicomhub.download.auth import FixedToken, OAuthLogin, TokenSource, read_credentials
from dicomhub.download.client import RetryPolicy, Server
from dicomhub.download.engine import Options, Run, Summary
from dicomhub.download.layout import Layout
from dicomhub.download.sources import Source, choose_server, parse_source
from dicomhub.download.state import DONE, FAILED, UNKNOWN
from dicomhub.errors import ArchiveError

console = Console(stderr=True)


class RichProgress:
    """Series done/total and bytes (rate, ETA) as two rich bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.series: TaskID | None = None
        self.bytes: TaskID | None = None

    def begin(self, series: int, nbytes: int) -> None:
        self.series = self.progress.add_task("series", total=series)
        self.bytes = self.progress.add_task("bytes", total=nbytes or None)

    def advance(self, nbytes: int) -> None:
        if self.bytes is not None:
            self.progress.advance(self.bytes, nbytes)

    def finished(self, ok: bool) -> None:
        if self.series is not None:
            self.progress.advance(self.series)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _token(
    base_url: str, token: str | None, user: str | None, credentials: Path | None
) -> TokenSource | None:
    if token:
        return FixedToken(token)
    if credentials is not None:
        name, password = read_credentials(credentials)
        return OAuthLogin(base_url, name, password)
    if user:
        secret = os.environ.get("DICOMHUB_DOWNLOAD_PASSWORD")
        if secret is None and sys.stdin.isatty():
            secret = str(typer.prompt(f"password for {user}", hide_input=True))
        return OAuthLogin(base_url, user, secret)
    return None


def download(
    source: Annotated[
        str, typer.Argument(help="A .tcia manifest, 'basket', a basket id, or a collection.")
    ],
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Folder to download into.")],
    server: Annotated[
        str | None,
        typer.Option("--server", "-s", help="Base URL (default: the manifest's server)."),
    ] = None,
    layout: Annotated[Layout, typer.Option("--layout", help="Folder layout.")] = Layout.NBIA,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1, max=64)] = 8,
    retries: Annotated[int | None, typer.Option("--retries", min=0, help="Per series.")] = None,
    backoff: Annotated[float, typer.Option("--backoff", min=0, help="First delay (s).")] = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Per request (s).")] = 60.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count and size; fetch none.")] = False,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="DICOMHUB_DOWNLOAD_TOKEN", help="Bearer token."),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Log in (password: DICOMHUB_DOWNLOAD_PASSWORD or prompt)."),
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option("--credentials", help="File with userName= and passWord= lines."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    nbia_only: Annotated[
        bool,
        typer.Option(
            "--nbia-only",
            help="Use NBIA's one-series-per-request API even on a dicomhub server.",
        ),
    ] = False,
) -> None:
    """Download SOURCE into DEST: parallel, resumable, every file checked."""
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit raises, not kills
    try:
        parsed = parse_source(source)
        base_url = choose_server(parsed, server)
        policy_retries = retries
        if policy_retries is None:
            header = parsed.header
            policy_retries = header.retries if header and header.retries is not None else 4
        policy = RetryPolicy(retries=policy_retries, backoff=backoff)
        options = Options(dest, layout, workers, policy, dry_run)
        client = Server(
            base_url,
            token=_token(base_url, token, user, credentials),
            workers=workers,
            timeout=timeout,
            policy=policy,
        )
        client.allow_bulk = not nbia_only
        try:
            summary = _run(parsed, client, options, quiet)
        finally:
            client.close()
    except ArchiveError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: run the same command again to resume")
        raise typer.Exit(130) from None
    _print_summary(summary)
    if not summary.dry_run and not summary.complete:
        raise typer.Exit(2)


def _run(parsed: Source, client: Server, options: Options, quiet: bool) -> Summary:
    if quiet or options.dry_run:
        run = Run(parsed, client, options)
        try:
            return run.execute()
        finally:
            run.close()
    with _progress() as bars:
        run = Run(parsed, client, options, RichProgress(bars))
        try:
            return run.execute()
        finally:
            run.close()


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{nbytes} B"


def _print_summary(summary: Summary) -> None:
    counts = summary.counts
    table = Table(title=f"{summary.source} from {summary.server}", show_header=False)
    table.add_row("series listed", str(summary.planned))
    if summary.dry_run:
        table.add_row("already here", str(counts[DONE]))
        table.add_row("to fetch", f"{summary.pending_series} ({_size(summary.pending_bytes)})")
    else:
        rate = summary.fetched_bytes / summary.seconds if summary.seconds else 0.0
        files = f"{counts.files} files, {_size(counts.fetched_bytes)}"
        table.add_row("done", f"{counts[DONE]} ({files})")
        table.add_row(
            "this run",
            f"{summary.fetched_series} series, {_size(summary.fetched_bytes)} in "
            f"{summary.seconds:.1f}s ({_size(int(rate))}/s)",
        )
        table.add_row("failed", str(counts[FAILED]))
    table.add_row("unknown to the server", str(counts[UNKNOWN]))
    table.add_row("denied", str(counts["denied"]))
    table.add_row("malformed lines", str(summary.malformed))
    table.add_row("duplicated UIDs", str(summary.duplicates))
    Console().print(table)
    for status, uid, reason in summary.failures:
        console.print(f"  [red]{status}[/red] {uid}: {escape(reason)}", soft_wrap=True)
    if summary.problems_csv is not None and not summary.complete:
        console.print(f"details: {summary.problems_csv}; run the same command again to retry")
    if summary.metadata_csv is not None:
        console.print(f"metadata: {summary.metadata_csv}")


app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
app.command()(download)


def main() -> None:
    """The ``dicomhub-download`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
