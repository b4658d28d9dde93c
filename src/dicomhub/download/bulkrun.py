"""The fetch loop of a run against a dicomhub server: many series per request.

Series go out in batches (one bulk stream each, at most ``workers`` at once)
and come back one at a time as each one's index lands; the main thread
records them in one transaction per drain, verified rows committed before any
folder moves, so a kill never leaves a final folder the state file does not
know.

Metadata (where each series goes, what the report says) is asked for in the
background, 1,000 series at a time, while the first batches download, so the
server's metadata work overlaps the transfers instead of preceding them.
Only the main thread writes the state file.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomhub.download.bulk import BulkFetcher
from dicomhub.download.client import METADATA_BATCH, Server
from dicomhub.download.fetch import (
    Failed,
    Fetched,
    Job,
    Stopped,
    clear_folder,
    move_into_place,
)
from dicomhub.download.layout import Layout, series_folder
from dicomhub.download.metadata import normalise
from dicomhub.download.state import DiskFull, State

if TYPE_CHECKING:
    from dicomhub.download.engine import Run, Summary

LOGGER = logging.getLogger(__name__)

#: Series per bulk request at most, and the expected bytes that close a batch early.
BULK_BATCH = 250
BULK_BATCH_BYTES = 512 * 1024 * 1024


def store_metadata(state: State, uids: Sequence[str], answer: Iterable[Mapping[str, Any]]) -> None:
    """Record the server's metadata rows for ``uids``; the ones it left out are unknown."""
    rows = [normalise(dict(row)) for row in answer]
    wanted = set(uids)
    found = [row for row in rows if row.get("uid") in wanted]
    state.set_meta_rows(found)
    seen = {row["uid"] for row in found}
    state.mark_unknown(uid for uid in uids if uid not in seen)


class MetaFeed:
    """Metadata asked for in a background thread, one chunk ahead, recorded by the caller."""

    def __init__(self, state: State, server: Server) -> None:
        self.state = state
        self.server = server
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="metadata")
        self.after = 0
        self.uids: list[str] = []
        self.future: Future[list[dict[str, str]]] | None = None
        self.done = False

    def pump(self) -> None:
        """Record a finished answer (raising its failure) and ask for the next chunk."""
        if self.done:
            return
        if self.future is not None:
            if not self.future.done():
                return
            answer = self.future.result()
            self.future = None
            store_metadata(self.state, self.uids, answer)
        batch = self.state.needing_meta(METADATA_BATCH, self.after)
        if not batch:
            self.done = True
            return
        self.after = batch[-1][0]
        self.uids = [uid for _, uid in batch]
        self.future = self.pool.submit(self.server.series_metadata, self.uids)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class BulkLoop:
    """One run's fetching through the bulk API (see the module docstring)."""

    def __init__(self, run: Run, summary: Summary, todo: int) -> None:
        self.run = run
        self.state = run.state
        self.summary = summary
        self.stop = threading.Event()
        self.settled: queue.SimpleQueue[Fetched | Failed] = queue.SimpleQueue()
        self.feed = MetaFeed(run.state, run.server)
        workers = run.options.workers
        self.size = max(1, min(run.server.bulk_max_series, BULK_BATCH, -(-todo // (2 * workers))))
        self.after = 0
        self.swept = False
        self.unrecorded: list[Fetched | Failed] = []

    def execute(self) -> None:
        run = self.run
        fetcher = BulkFetcher(
            run.server, run.staging, run.options.layout, run.options.policy, self.stop,
            run.progress.advance,
        )  # fmt: skip
        fatal: BaseException | None = None
        inflight: set[Future[None]] = set()
        try:
            with ThreadPoolExecutor(run.options.workers, thread_name_prefix="fetch") as pool:
                while True:
                    if fatal is None:
                        fatal = self._guard(self.feed.pump)
                    while fatal is None and len(inflight) < run.options.workers:
                        batch = self._next_batch(idle=not inflight)
                        if not batch:
                            break
                        inflight.add(pool.submit(fetcher.fetch, batch, self.settled.put))
                    if not inflight and (fatal is not None or self._finished()):
                        break
                    try:
                        done, _ = wait(inflight, timeout=0.2, return_when=FIRST_COMPLETED)
                    except BaseException as exc:  # Ctrl-C: stop workers, keep what they finished
                        fatal = fatal or exc
                        self.stop.set()
                        continue
                    fatal = fatal or self._guard(self._drain)
                    for future in done:
                        inflight.discard(future)
                        try:
                            future.result()
                        except Stopped:
                            continue
                        except BaseException as exc:
                            fatal = fatal or exc
                    if fatal is not None:
                        self.stop.set()
                        inflight = {future for future in inflight if not future.cancel()}
        finally:
            self.feed.close()
        last = self._guard(self._drain)
        fatal = fatal or last
        while isinstance(last, DiskFull) and self.unrecorded:
            last = self._make_room()
        if fatal is not None:
            run.place_staged()  # an interrupted record leaves verified series behind
            raise fatal

    def _guard(self, call: Callable[[], None]) -> BaseException | None:
        try:
            call()
        except BaseException as exc:
            self.stop.set()
            return exc
        return None

    def _make_room(self) -> BaseException | None:
        """The disk is too full to record anything: give up half of the unrecorded series.

        Their staging folders go (they are fetched again next run), which frees
        the room the state file needs to record the other half.
        """
        keep = len(self.unrecorded) // 2
        for result in self.unrecorded[keep:]:
            if isinstance(result, Fetched):
                clear_folder(result.staged, quiet=True)
        self.unrecorded = self.unrecorded[:keep]
        return self._guard(self._drain)

    def _finished(self) -> bool:
        """Nothing in flight, metadata complete, nothing ready, and the sweep found nothing.

        A series whose metadata arrived after the cursor passed its place (its
        neighbours had metadata from an earlier run) is picked up by one sweep
        from the start over the series still pending.
        """
        if not self.feed.done or self.state.to_fetch_ready(self.after, 1, self.swept):
            return False
        if self.swept:
            return True
        self.swept, self.after = True, 0
        return not self.state.to_fetch_ready(0, 1, True)

    def _next_batch(self, *, idle: bool) -> list[Job]:
        """The next ready series, a whole batch unless metadata is complete or workers idle."""
        rows = self.state.to_fetch_ready(self.after, self.size, self.swept)
        if not rows or (len(rows) < self.size and not self.feed.done and not idle):
            return []  # wait for the next metadata chunk to fill a whole batch
        batch: list[Job] = []
        nbytes = 0
        layout: Layout = self.run.options.layout
        for row in rows:
            self.after = int(row["seq"])
            size = _int(row["expected_size"])
            meta = dict(zip(row.keys(), row, strict=True))
            folder = series_folder(layout, meta)
            batch.append(Job(row["uid"], folder, _int(row["images"]), size))
            nbytes += size or 0
            if nbytes >= BULK_BATCH_BYTES:
                break
        return batch

    def _drain(self) -> None:
        """Record every series the workers settled since the last call.

        If recording fails (a full disk also stops the state file), what was not
        recorded is kept and tried again by the last drain, after the workers
        have stopped and removed their unfinished files.
        """
        while True:
            try:
                self.unrecorded.append(self.settled.get_nowait())
            except queue.Empty:
                break
        if not self.unrecorded:
            return
        results, self.unrecorded = self.unrecorded, []
        try:
            record_many(self.state, self.run.dest, results, self.summary, self.run.progress)
        except BaseException:
            self.unrecorded = [
                r for r in results if isinstance(r, Failed) or Path(r.staged).is_dir()
            ]
            raise


def record_many(
    state: State, dest: Path, results: list[Fetched | Failed], summary: Summary, progress: Any
) -> None:
    """Record results: verified rows committed before any folder moves, then done."""
    state.execute("BEGIN")
    try:
        for result in results:
            if isinstance(result, Failed):
                state.mark_failed(result.uid, result.status, result.message, result.attempts)
            else:
                state.mark_verified(
                    result.uid, str(result.staged), str(result.folder), result.files,
                    result.nbytes, result.sha256,
                )  # fmt: skip
    except BaseException:
        if state.db.in_transaction:
            state.execute("ROLLBACK")
        raise
    state.execute("COMMIT")
    when = now_text()
    state.execute("BEGIN")
    try:
        for result in results:
            if isinstance(result, Fetched):
                move_into_place(result.staged, dest / result.folder)
                state.mark_done(result.uid, when)
                summary.fetched_series += 1
                summary.fetched_bytes += result.nbytes
    finally:
        state.execute("COMMIT")
    for result in results:
        progress.finished(isinstance(result, Fetched))


def now_text() -> str:
    """Now, as the state file and the report write it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


__all__ = ["BULK_BATCH", "BulkLoop", "MetaFeed", "now_text", "record_many", "store_metadata"]
