"""The submitter pipeline: scan → de-identify (worker processes) → send (STOW-RS) → verify.

The main thread owns the state database and moves each row forward only after the work
of its stage is durable; de-identification runs in a process pool (workers read and write
the files themselves) while finished batches are already being uploaded from a thread
pool, so the network and the CPUs work at the same time.

Resume: a row left ``deidentified`` inside a batch was in flight when the run stopped;
before anything is sent again the intake's inventory says whether it arrived.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dicomhub.errors import ArchiveError, Conflict, StorageError
from dicomhub.submit import report, scan
from dicomhub.submit.idmap import IdMap
from dicomhub.submit.kit import Kit
from dicomhub.submit.state import FileRow, Outcome, StateDB
from dicomhub.submit.upload import BatchResult, Part, StowClient
from dicomhub.submit.verify import VerifyUnavailable
from dicomhub.submit.worker import WorkerConfig, WorkResult, init_worker, process

LOGGER = logging.getLogger(__name__)

#: Called with (stage, completed now, added to the stage's total) as work progresses.
ProgressHook = Callable[[str, int, int], None]
#: The intake's view of what arrived: SOP Instance UID -> sha256.
Inventory = Callable[[], dict[str, str]]


class OutputDiskFull(StorageError):
    """The de-identified output cannot be written; free space and rerun."""

    code = "disk_full"


class WorkFolderBusy(Conflict):
    """Another run holds the work folder."""

    code = "work_folder_busy"


@dataclass
class Options:
    """How to run; the defaults suit a site workstation."""

    folders: list[Path]
    work: Path
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    batch_size: int = 50
    upload_threads: int = 2
    #: Results recorded in one state transaction at most (one commit and fsync each).
    record_every: int = 64
    dry_run: bool = False
    out: Path | None = None
    keep_outputs: bool = False
    verify_rounds: int = 3


def state_folder(options: Options) -> Path:
    """Where the state database lives; a dry run keeps its own per output folder."""
    if not options.dry_run:
        return options.work
    assert options.out is not None
    tag = hashlib.sha256(str(options.out.resolve()).encode()).hexdigest()[:12]
    return options.work / "dry-run" / tag


class Pipeline:
    """One run of one kit over some folders."""

    def __init__(
        self,
        kit: Kit,
        idmap: IdMap,
        options: Options,
        *,
        stow: StowClient | None = None,
        inventory: Inventory | None = None,
        progress: ProgressHook | None = None,
    ) -> None:
        if not options.dry_run and (stow is None or inventory is None):
            raise ValueError("a real run needs a STOW client and an inventory")
        if options.dry_run and options.out is None:
            raise ValueError("a dry run needs an output folder")
        self.kit, self.idmap, self.options = kit, idmap, options
        self.stow, self.inventory = stow, inventory
        self.progress = progress or (lambda stage, n, total: None)
        self.folder = state_folder(options)
        self.state = StateDB(self.folder / "state.sqlite3")
        self.state.bind(kit.kit_id, kit.recipe().recipe_hash())
        self.summary = report.Summary(kit.kit_id, kit.collection, kit.site, options.dry_run)
        self.ready: deque[FileRow | Outcome] = deque()
        self.uploads: dict[Future[BatchResult], list[Part]] = {}
        self.send_error: ArchiveError | None = None
        self._upload_pool: ThreadPoolExecutor | None = None
        self._lock: IO[bytes] | None = None

    @property
    def out_dir(self) -> Path:
        return self.options.out if self.options.out is not None else self.folder / "outbox"

    # -- the run -------------------------------------------------------------

    def run(self) -> report.Summary:
        """Do everything that is left; the summary says what and whether it is complete."""
        started = time.monotonic()
        try:
            self._lock = _lock_folder(self.folder)
        except WorkFolderBusy:
            self.state.close()
            raise
        try:
            self._scan()
            self.state.reset_missing_outputs()
            if not self.options.dry_run:
                self._settle_in_flight()
            self._process()
            if not self.options.dry_run:
                self._verify()
        except ArchiveError as exc:
            self.summary.error = exc.message
            raise
        finally:
            self.summary.seconds = time.monotonic() - started
            self._finish()
        return self.summary

    def _finish(self) -> None:
        try:
            report.fill(self.summary, self.state)
            report.write_mappings(self.state, self.folder / "mapping")
            report.write_report(self.summary, self.state, self.folder / "report.json")
        except (OSError, ArchiveError) as exc:
            LOGGER.error("could not write the report: %s", exc)
        finally:
            if self._upload_pool is not None:
                self._upload_pool.shutdown(wait=True, cancel_futures=True)
            self.state.close()
            if self._lock is not None:
                self._lock.close()

    def _scan(self) -> None:
        exclude = [self.options.work, self.out_dir]
        added = self.state.add_seen(scan.walk(self.options.folders, exclude=exclude))
        LOGGER.info("%d new file(s) found", added)

    def _settle_in_flight(self) -> None:
        """Rows in a batch when the last run stopped: the intake says what arrived."""
        rows = self.state.in_flight()
        if not rows:
            return
        assert self.inventory is not None
        try:
            arrived = self.inventory()
        except VerifyUnavailable:
            # Sent again: the intake replaces an instance with the same UID and patient.
            arrived = {}
        done = [r.id for r in rows if r.sop_uid and arrived.get(r.sop_uid) == r.sha256]
        self.state.set_stage(done, "verified")
        self.state.set_stage([r.id for r in rows if r.id not in set(done)], "deidentified")
        LOGGER.info("%d in-flight instance(s) had arrived, %d will be sent", len(done),
                    len(rows) - len(done))  # fmt: skip

    # -- de-identify and send --------------------------------------------------

    def _config(self) -> WorkerConfig:
        return WorkerConfig(
            recipe=self.kit.recipe(),
            patients=self.idmap.patients,
            rules=self.kit.body.burned_in,
            out_dir=str(self.out_dir),
            layout="tree" if self.options.dry_run else "flat",
            collection=self.kit.collection,
            site=self.kit.site,
            sponsor=self.kit.body.sponsor or self.kit.collection,
        )

    def _process(self) -> None:
        if self.out_dir.exists():
            for stale in self.out_dir.rglob(".*.tmp"):  # left by a worker killed mid-write
                stale.unlink(missing_ok=True)
        pending = deque(self.state.rows("seen"))
        self.ready.extend(self.state.rows("deidentified"))
        self.progress("deidentify", 0, len(pending))
        if not self.options.dry_run:
            self.progress("send", 0, len(self.ready))
        if not pending:
            self._drain_uploads(final=True)
            return
        context = _process_context()
        workers = max(1, min(self.options.workers, len(pending)))
        started = time.monotonic()
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=init_worker, initargs=(self._config(),)
        ) as pool:
            running: dict[Future[WorkResult], int] = {}
            try:
                self._loop(pool, pending, running)
            except BaseException:
                for future in running:
                    future.cancel()
                raise
        self.summary.deid_seconds = time.monotonic() - started
        self._drain_uploads(final=True)

    def _loop(
        self, pool: ProcessPoolExecutor, pending: deque[FileRow],
        running: dict[Future[WorkResult], int],
    ) -> None:  # fmt: skip
        window = self.options.workers * 8
        # Real runs record at least a batch at a time, so the sender is fed whole batches.
        every = self.options.record_every
        if not self.options.dry_run:
            every = max(1, min(every, self.options.batch_size))
        finished: list[WorkResult] = []
        last_commit = time.monotonic()
        while pending or running:
            while pending and len(running) < window and not self._backlogged():
                row = pending.popleft()
                running[pool.submit(process, row.id, row.path)] = row.id
            waiting: list[Future[Any]] = [*running, *self.uploads]
            done, _ = wait_futures(waiting, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                if future in running:
                    del running[future]
                    finished.append(future.result())
            if finished and (len(finished) >= every or time.monotonic() - last_commit > 0.5):
                self._record(finished)
                finished, last_commit = [], time.monotonic()
            self._drain_uploads(final=False)
        if finished:
            self._record(finished)

    def _backlogged(self) -> bool:
        """Whether the sender is behind: every connection busy and a whole batch waiting.

        De-identifying further would only pile files up in the outbox (a whole copy of
        the collection on a slow link) and, where the intake shares the machine, take
        the CPU it needs: the backlog left when de-identification ends is what the run
        waits for with the workers idle. New files wait until a batch goes.
        """
        return (
            not self.options.dry_run
            and self.send_error is None
            and len(self.uploads) >= self.options.upload_threads
            and len(self.ready) >= self.options.batch_size
        )

    def _record(self, results: list[WorkResult]) -> None:
        errors = [r.error for r in results if r.error]
        uid_pairs = [pair for r in results for pair in r.uid_pairs]
        patients = [r.patient_pair for r in results if r.patient_pair]
        outcomes = [r.outcome for r in results if not r.error]
        recorded = self.state.record(outcomes, uid_pairs, patients)
        fresh = [o for o in recorded if o.stage == "deidentified"]
        self.summary.deidentified_this_run += len(fresh)
        self.ready.extend(fresh)
        self.progress("deidentify", len(results), 0)
        if not self.options.dry_run:
            self.progress("send", 0, len(fresh))
        if errors:
            raise OutputDiskFull(
                f"{errors[0]}; free space and run the same command again (nothing is lost)"
                if "disk full" in errors[0]
                else errors[0]
            )

    def _drain_uploads(self, *, final: bool) -> None:
        """Collect finished uploads and start new batches; with ``final``, until all is sent."""
        if self.options.dry_run:
            self.ready.clear()
            return
        while True:
            for future in [f for f in self.uploads if f.done()]:
                self._uploaded(self.uploads.pop(future), future)
            while (
                self.send_error is None
                and len(self.uploads) < self.options.upload_threads
                and (len(self.ready) >= self.options.batch_size or (final and self.ready))
            ):
                self._send_next(self._next_size(final=final))
            if not final or not self.uploads:
                break
            wait_futures(list(self.uploads), return_when=FIRST_COMPLETED)
        if final and self.send_error is not None:
            raise self.send_error

    def _next_size(self, *, final: bool) -> int:
        """Full batches, except that the last instances are shared by the free connections
        (one batch of 40 takes twice as long as two of 20 sent side by side)."""
        size = self.options.batch_size
        free = self.options.upload_threads - len(self.uploads)
        if final and len(self.ready) < size * free:
            size = -(-len(self.ready) // free)
        return size

    def _send_next(self, size: int) -> None:
        assert self.stow is not None
        batch: list[Part] = []
        while self.ready and len(batch) < size:
            item = self.ready.popleft()
            file_id = item.id if isinstance(item, FileRow) else item.file_id
            assert item.sop_uid
            assert item.out_path
            assert item.nbytes is not None
            batch.append(Part(file_id, item.sop_uid, Path(item.out_path), item.nbytes))
        self.state.start_batch([p.file_id for p in batch])
        if self._upload_pool is None:
            self._upload_pool = ThreadPoolExecutor(
                self.options.upload_threads, thread_name_prefix="stow"
            )
        self.uploads[self._upload_pool.submit(self.stow.store, batch)] = batch

    def _uploaded(self, parts: list[Part], future: Future[BatchResult]) -> None:
        try:
            result = future.result()
        except ArchiveError as exc:
            # Leave the batch in flight: the next run asks the intake what arrived.
            self.send_error = self.send_error or exc
            return
        by_uid = {p.sop_uid: p for p in parts}
        stored = [by_uid[u].file_id for u in result.stored if u in by_uid]
        self.state.set_stage(stored, "sent")
        for uid, reason in result.failed.items():
            if uid in by_uid:
                self.state.set_stage([by_uid[uid].file_id], "rejected", f"intake: {reason}")
        self.summary.sent_this_run += len(stored)
        self.summary.bytes_sent += sum(by_uid[u].size for u in result.stored if u in by_uid)
        self.progress("send", len(parts), 0)

    # -- verify ------------------------------------------------------------------

    def _verify(self) -> None:
        """Compare every sent instance with the intake's sha256; resend what differs."""
        assert self.inventory is not None
        for _round in range(self.options.verify_rounds):
            sent = self.state.rows("sent")
            if not sent:
                break
            self.progress("verify", 0, len(sent))
            try:
                arrived = self.inventory()
            except VerifyUnavailable as exc:
                LOGGER.warning("%s", exc.message)
                self.summary.unverified = exc.message
                return
            good = [r.id for r in sent if r.sop_uid and arrived.get(r.sop_uid) == r.sha256]
            bad = [r for r in sent if r.id not in set(good)]
            self.state.set_stage(good, "verified")
            self.progress("verify", len(good), -len(bad))
            if not bad:
                break
            LOGGER.warning("%d instance(s) missing or different at the intake: resending", len(bad))
            self.summary.resent += len(bad)
            self.state.set_stage([r.id for r in bad], "deidentified")
            resend = self.state.rows("deidentified")
            self.ready.extend(resend)
            self.progress("send", 0, len(resend))
            self._drain_uploads(final=True)
        if not self.options.keep_outputs:
            for row in self.state.rows("verified"):
                if row.out_path:
                    Path(row.out_path).unlink(missing_ok=True)


def _lock_folder(folder: Path) -> IO[bytes] | None:
    """Hold the work folder for one run: two runs (or a run and a listener's cycle) over
    the same rows would de-identify and send them twice. Released when the file closes."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks
        return None
    handle = (folder / "run.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise WorkFolderBusy(
            f"another submit run or listener is working in {folder}; wait for it to finish"
        ) from exc
    return handle


def _process_context() -> multiprocessing.context.BaseContext:
    """Fork workers from a clean, single-threaded server that imported the engine once.

    Forking the main process is unsafe once upload threads run; spawning re-imports
    pydicom and the Annex E tables in every worker (seconds each).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dicomhub.submit.worker"])
        return context
    return multiprocessing.get_context("spawn")
