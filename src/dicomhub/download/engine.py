"""One download run: plan, ask for metadata, fetch in parallel, move into place, report.

Memory stays flat whatever the manifest's size: the plan goes straight from
the manifest into the state file, metadata is asked for 1,000 series at a
time, and the fetch loop keeps at most ``2 x workers`` series in flight, read
from the state file in small batches.  Only this thread writes the state file;
workers fetch and verify, and hand back a result.

A run that stops on a fatal error (a full disk, a refused credential, DEST
gone) first records every series that finished, then raises; the same
command resumes it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dicomhub.download import report
from dicomhub.download.bulkrun import BulkLoop, now_text, store_metadata
from dicomhub.download.client import METADATA_BATCH, RetryPolicy, Server
from dicomhub.download.fetch import Failed, Fetched, Fetcher, Job, Stopped, move_into_place
from dicomhub.download.layout import Layout, series_folder
from dicomhub.download.sources import Source
from dicomhub.download.state import DONE, Counts, State
from dicomhub.errors import BadRequest, StorageError

LOGGER = logging.getLogger(__name__)


class Progress(Protocol):
    """What the run reports as it goes (the CLI draws it; tests may ignore it)."""

    def begin(self, series: int, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finished(self, ok: bool) -> None: ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def begin(self, series: int, nbytes: int) -> None:
        """Nothing to draw."""

    def advance(self, nbytes: int) -> None:
        """Nothing to draw."""

    def finished(self, ok: bool) -> None:
        """Nothing to draw."""


@dataclass(frozen=True)
class Options:
    """How to run."""

    dest: Path
    layout: Layout = Layout.NBIA
    workers: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    dry_run: bool = False


@dataclass
class Summary:
    """What a run did and what is left; the CLI prints it."""

    source: str
    server: str
    counts: Counts
    fetched_series: int = 0
    fetched_bytes: int = 0
    seconds: float = 0.0
    malformed: int = 0
    duplicates: int = 0
    planned: int = 0
    dry_run: bool = False
    pending_bytes: int = 0
    pending_series: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    metadata_csv: Path | None = None
    problems_csv: Path | None = None

    @property
    def complete(self) -> bool:
        counts = self.counts
        return counts[DONE] == counts.total and not self.malformed and not self.duplicates


def check_dest(dest: Path) -> None:
    """DEST exists (or can be made) and takes files; a clear error otherwise."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BadRequest(f"DEST {dest} exists and is not a folder") from None
    except OSError as exc:
        raise BadRequest(f"DEST {dest} cannot be created: {exc.strerror}") from None
    probe = dest / f".dicomhub-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadRequest(f"DEST {dest} is not writable: {exc.strerror}") from None


class Run:
    """One invocation of the downloader over one DEST."""

    def __init__(
        self, source: Source, server: Server, options: Options, progress: Progress | None = None
    ) -> None:
        self.source = source
        self.server = server
        self.options = options
        self.progress = progress or NoProgress()
        self.dest = options.dest
        check_dest(self.dest)
        self.state = State(self.dest)
        self.staging = self.state.folder / "staging"

    def close(self) -> None:
        self.state.close()

    def execute(self) -> Summary:
        started = time.monotonic()
        self._check_layout()
        self.server.probe()
        planned = self._plan()
        # The bulk path asks for the rest while it downloads (see bulkrun).
        self._metadata(1 if self.server.bulk and not self.options.dry_run else None)
        self._recover()
        summary = Summary(self.source.label, self.server.base_url, self.state.counts())
        summary.planned = planned
        for row in self.state.problems():
            if row["kind"] == "malformed":
                summary.malformed += 1
            else:
                summary.duplicates += 1
        if self.options.dry_run:
            return self._dry_summary(summary)
        fatal: BaseException | None = None
        try:
            self._download(summary)
        except BaseException as exc:
            fatal = exc
        finally:
            summary.seconds = time.monotonic() - started
            summary.counts = self.state.counts()
            try:
                summary.metadata_csv, summary.problems_csv = report.write_reports(
                    self.state, self.dest
                )
            except (OSError, StorageError) as exc:
                if fatal is None:
                    raise
                LOGGER.debug("the reports could not be written: %s", exc)
            summary.failures = report.failures(self.state, limit=20)
        if fatal is not None:
            raise fatal
        return summary

    def _check_layout(self) -> None:
        chosen = self.options.layout.value
        recorded = self.state.get_meta("layout")
        if recorded is not None and recorded != chosen and self.state.counts(False)[DONE]:
            raise BadRequest(
                f"DEST {self.dest} holds a download in the {recorded!r} layout; "
                f"use --layout {recorded} or another DEST"
            )
        self.state.set_meta("layout", chosen)

    # -- planning ----------------------------------------------------------------------

    def _plan(self) -> int:
        self.state.begin_plan()
        try:
            for entry in self.source.entries(self.server):
                if entry.valid:
                    self.state.plan(entry.text, entry.line)
                else:
                    self.state.problem(entry.line, entry.text[:200], "malformed")
        except BaseException:
            self.state.execute("ROLLBACK")
            raise
        planned = self.state.end_plan()
        self.state.set_meta("server", self.server.base_url)
        if planned == 0 and not any(True for _ in self.state.problems()):
            raise BadRequest(f"{self.source.label} lists no series")
        return planned

    def _metadata(self, chunks: int | None = None) -> None:
        """Ask for the series' metadata, 1,000 at a time (only ``chunks`` of them if given)."""
        after = 0
        done = 0
        while (chunks is None or done < chunks) and (
            batch := self.state.needing_meta(METADATA_BATCH, after)
        ):
            after = batch[-1][0]
            uids = [uid for _, uid in batch]
            store_metadata(self.state, uids, self.server.series_metadata(uids))
            done += 1

    def _recover(self) -> None:
        """Finish what a stopped run verified; re-fetch done series whose folder was removed."""
        self.place_staged()
        if self.staging.is_dir():  # what a stopped run left half-fetched: never verified
            for leftover in self.staging.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        after = 0
        while batch := self.state.done_paths(after, 1000):
            after = batch[-1][0]
            for _, uid, path in batch:
                if not (self.dest / path).is_dir():
                    LOGGER.warning("series %s was removed from %s; fetching it again", uid, path)
                    self.state.reset_to_pending(uid)

    def place_staged(self) -> None:
        """Move every verified series still in staging to its place (or mark it pending)."""
        for row in self.state.staged():
            staged = Path(row["staged"]) if row["staged"] else None
            final = self.dest / row["path"]
            if staged is not None and staged.is_dir():
                move_into_place(staged, final)
            if final.is_dir():
                self.state.mark_done(row["uid"], _now())
            else:
                self.state.reset_to_pending(row["uid"])

    def _dry_summary(self, summary: Summary) -> Summary:
        summary.dry_run = True
        summary.pending_series, summary.pending_bytes = self.state.to_fetch_totals()
        return summary

    # -- fetching --------------------------------------------------------------------------

    def _jobs(self) -> Iterator[Job]:
        after = 0
        layout = self.options.layout
        while rows := self.state.to_fetch(after, 256):
            after = int(rows[-1]["seq"])
            for row in rows:
                if not row["has_meta"]:
                    continue
                yield Job(
                    uid=row["uid"],
                    folder=series_folder(layout, _row_dict(row)),
                    images=_int(row["images"]),
                    expected_size=_int(row["expected_size"]),
                )

    def _download(self, summary: Summary) -> None:
        todo, pending_bytes = self.state.to_fetch_totals()
        self.progress.begin(todo, pending_bytes)
        self.staging.mkdir(parents=True, exist_ok=True)
        if self.server.bulk:
            BulkLoop(self, summary, todo).execute()
            return
        stop = threading.Event()
        fetcher = Fetcher(
            self.server, self.staging, self.options.layout, self.options.policy, stop,
            self.progress.advance,
        )  # fmt: skip
        workers = self.options.workers
        jobs = self._jobs()
        inflight: dict[Future[Fetched | Failed], Job] = {}
        fatal: BaseException | None = None
        with ThreadPoolExecutor(workers, thread_name_prefix="fetch") as pool:
            queue: deque[Job] = deque()
            while True:
                while fatal is None and len(inflight) < 2 * workers:
                    if not queue:
                        queue.extend(job for _, job in zip(range(64), jobs, strict=False))
                    if not queue:
                        break
                    job = queue.popleft()
                    inflight[pool.submit(fetcher.fetch, job)] = job
                if not inflight:
                    break
                try:
                    done, _ = wait(inflight, timeout=0.5, return_when=FIRST_COMPLETED)
                except BaseException as exc:  # Ctrl-C: stop workers, keep what they finished
                    fatal = fatal or exc
                    stop.set()
                    continue
                for future in done:
                    inflight.pop(future)
                    try:
                        self._record(future.result(), summary)
                    except Stopped:
                        continue
                    except BaseException as exc:
                        if fatal is None:
                            fatal = exc
                            stop.set()
                if fatal is not None:
                    for future in list(inflight):
                        if future.cancel():
                            inflight.pop(future)
        if fatal is not None:
            raise fatal

    def _record(self, result: Fetched | Failed, summary: Summary) -> None:
        if isinstance(result, Failed):
            self.state.mark_failed(result.uid, result.status, result.message, result.attempts)
            self.progress.finished(False)
            return
        final = self.dest / result.folder
        self.state.mark_verified(
            result.uid, str(result.staged), str(result.folder), result.files, result.nbytes,
            result.sha256,
        )  # fmt: skip
        move_into_place(result.staged, final)
        self.state.mark_done(result.uid, _now())
        summary.fetched_series += 1
        summary.fetched_bytes += result.nbytes
        self.progress.finished(True)


def _row_dict(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _now() -> str:
    return now_text()


__all__ = ["NoProgress", "Options", "Progress", "Run", "Summary", "check_dest"]
