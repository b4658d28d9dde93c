"""The submitter's local state database (SQLite, stdlib ``sqlite3``).

Every source file has one row and one stage; the pipeline moves a row forward only after
the work of that stage is durable (the de-identified file renamed into place, the STOW
response received, the intake's sha256 compared), so a run killed at any moment resumes
where it stopped: nothing is sent twice and nothing is lost.

Stages: ``seen`` → ``deidentified`` → ``sent`` → ``verified``, or ``quarantined`` (kept
at the site with a reason). Side exits: ``skipped`` (not DICOM, listed in the report),
``duplicate`` (same instance found twice), ``rejected`` (the intake refused it).
A row in ``deidentified`` with a ``batch`` was in flight when the run stopped; the
resume asks the intake what arrived before sending it again.

The database holds PHI (source paths, the old→new maps) and never leaves the site.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from dicomhub.errors import Conflict, StorageError

STAGES = ("seen", "quarantined", "deidentified", "sent", "verified")
EXITS = ("skipped", "duplicate", "rejected")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    stage TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    patient TEXT,
    study_uid TEXT,
    series_uid TEXT,
    sop_uid TEXT,
    out_path TEXT,
    sha256 TEXT,
    nbytes INTEGER,
    batch INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_stage ON files (stage);
CREATE INDEX IF NOT EXISTS files_sop ON files (sop_uid);
CREATE TABLE IF NOT EXISTS uid_map (old TEXT PRIMARY KEY, new TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patient_map (old TEXT PRIMARY KEY, new TEXT NOT NULL);
"""


#: Errors that mean "no room left": no space, quota exceeded.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: A write that fails this close to a limit is taken as the limit reached.
GROWTH_MARGIN = 1 << 20


def _file_size_limit() -> int | None:
    """The process's file size limit (RLIMIT_FSIZE) in bytes, or None when unlimited."""
    try:
        import resource
    except ImportError:  # not on Unix: no such limit
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


class StateError(StorageError):
    """The local state database cannot be read or written (full disk, damaged file)."""

    code = "state_error"


@dataclass(frozen=True, slots=True)
class FileRow:
    """One source file's row."""

    id: int
    path: str
    stage: str
    reason: str | None
    sop_uid: str | None
    series_uid: str | None
    study_uid: str | None
    out_path: str | None
    sha256: str | None
    nbytes: int | None
    batch: int | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker made of one source file, ready to be recorded."""

    file_id: int
    stage: str
    reason: str | None = None
    detail: str | None = None
    patient: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    out_path: str | None = None
    sha256: str | None = None
    nbytes: int | None = None


_ROW = "id, path, stage, reason, sop_uid, series_uid, study_uid, out_path, sha256, nbytes, batch"


class StateDB:
    """The state database of one kit's submission in one work folder."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        """Open (and create) the database; ``shared`` lets several threads use this
        connection, which the caller then serializes (the listener holds a lock)."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=not shared
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> StateError:
        text = str(exc)
        cause = self._no_room(exc)
        if cause is not None:
            return StateError(
                f"{cause} and run the same command again (nothing is lost: the run resumes "
                "where it stopped)"
            )
        return StateError(f"the state database {self.path} cannot be used: {text}")

    def _no_room(self, exc: Exception) -> str | None:
        """Why the database could not grow, if that is what ``exc`` means.

        SQLite says SQLITE_FULL for a full disk, but a write refused for another lack of
        room (a file size limit, EFBIG; a quota) comes back as a generic write I/O error,
        so that case is told apart by looking at the limit and the free space.
        """
        name = str(getattr(exc, "sqlite_errorname", ""))
        number = getattr(exc, "errno", None)
        if name == "SQLITE_FULL" or "full" in str(exc) or number in NO_SPACE:
            return f"the disk holding the state database {self.path} is full; free space"
        if not (name.startswith("SQLITE_IOERR") or number == errno.EFBIG):
            return None
        limit = _file_size_limit()
        if limit is not None:
            files = (self.path, self.path.with_name(self.path.name + "-wal"))
            largest = max((f.stat().st_size for f in files if f.exists()), default=0)
            if largest + GROWTH_MARGIN >= limit:
                return (
                    f"the state database {self.path} reached the file size limit of this "
                    f"process ({limit} bytes, ulimit -f); raise the limit"
                )
        with suppress(OSError):
            if shutil.disk_usage(self.path.parent).free < GROWTH_MARGIN:
                return f"the disk holding the state database {self.path} is full; free space"
        return None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk becomes a :class:`StateError`."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A COMMIT that failed (a full disk) may leave the transaction open; end it so
            # the connection stays usable once space is back.
            if self.conn.in_transaction:
                with suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise self._error(exc) from exc

    def close(self) -> None:
        self.conn.close()

    # -- the kit this folder belongs to -------------------------------------

    def bind(self, kit_id: str, recipe_hash: str) -> None:
        """Tie the folder to one kit and recipe; a different kit is refused."""
        rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        if rows and (rows.get("kit_id"), rows.get("recipe_hash")) != (kit_id, recipe_hash):
            raise Conflict(
                f"the work folder {self.path.parent} belongs to kit {rows.get('kit_id')} with "
                "another recipe; use another --work folder for this kit"
            )
        if not rows:
            with self.tx() as conn:
                conn.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("kit_id", kit_id), ("recipe_hash", recipe_hash)],
                )

    # -- files ----------------------------------------------------------------

    def add_seen(self, entries: Iterable[tuple[str, int]]) -> int:
        """Record new source files (path, size); known paths keep their stage."""
        now = time.time()
        with self.tx() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO files (path, size, stage, updated) VALUES (?, ?, 'seen', ?)",
                ((path, size, now) for path, size in entries),
            )
            return conn.total_changes - before

    def skip(self, items: Iterable[tuple[int, str]]) -> None:
        """Mark files that are not DICOM (listed in the report, never sent)."""
        with self.tx() as conn:
            conn.executemany(
                "UPDATE files SET stage='skipped', reason=?, updated=? WHERE id=?",
                ((reason, time.time(), file_id) for file_id, reason in items),
            )

    def rows(self, stage: str, *, limit: int | None = None) -> list[FileRow]:
        sql = f"SELECT {_ROW} FROM files WHERE stage=? ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [FileRow(*r) for r in self.conn.execute(sql, (stage,))]

    def sources(self, stages: Sequence[str], under: Path) -> list[str]:
        """Source paths of the rows in ``stages`` that lie under the folder ``under``."""
        marks = ",".join("?" * len(stages))
        prefix = str(under).rstrip("/") + "/"
        sql = f"SELECT path FROM files WHERE stage IN ({marks}) AND substr(path, 1, ?) = ?"
        return [r[0] for r in self.conn.execute(sql, (*stages, len(prefix), prefix))]

    def in_flight(self) -> list[FileRow]:
        """De-identified rows that were part of a batch when a run stopped."""
        sql = f"SELECT {_ROW} FROM files WHERE stage='deidentified' AND batch IS NOT NULL"
        return [FileRow(*r) for r in self.conn.execute(sql)]

    def record(
        self,
        outcomes: Sequence[Outcome],
        uid_pairs: Iterable[tuple[str, str]] = (),
        patient_pairs: Iterable[tuple[str, str]] = (),
    ) -> list[Outcome]:
        """Record worker outcomes and mappings in one transaction.

        A de-identified instance whose new SOP Instance UID another source file already
        produced becomes ``duplicate`` (its output is the same file). Returns what was
        recorded, duplicates adjusted.
        """
        recorded: list[Outcome] = []
        now = time.time()
        with self.tx() as conn:
            conn.executemany("INSERT OR IGNORE INTO uid_map VALUES (?, ?)", uid_pairs)
            conn.executemany("INSERT OR IGNORE INTO patient_map VALUES (?, ?)", patient_pairs)
            for o in outcomes:
                if (
                    o.stage == "deidentified"
                    and conn.execute(
                        "SELECT 1 FROM files WHERE sop_uid=? AND id<>? AND stage IN "
                        "('deidentified','sent','verified')",
                        (o.sop_uid, o.file_id),
                    ).fetchone()
                ):
                    o = Outcome(o.file_id, "duplicate", "same instance as another file", None,
                                o.patient, o.study_uid, o.series_uid, o.sop_uid)  # fmt: skip
                conn.execute(
                    "UPDATE files SET stage=?, reason=?, detail=?, patient=?, study_uid=?, "
                    "series_uid=?, sop_uid=?, out_path=?, sha256=?, nbytes=?, batch=NULL, "
                    "updated=? WHERE id=?",
                    (o.stage, o.reason, o.detail, o.patient, o.study_uid, o.series_uid,
                     o.sop_uid, o.out_path, o.sha256, o.nbytes, now, o.file_id),
                )  # fmt: skip
                recorded.append(o)
        return recorded

    def start_batch(self, ids: Sequence[int]) -> int:
        """Mark ``ids`` as in flight in a new batch (before any byte is sent)."""
        with self.tx() as conn:
            batch = int(conn.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM files").fetchone()[0])
            conn.executemany(
                "UPDATE files SET batch=?, attempts=attempts+1, updated=? WHERE id=?",
                ((batch, time.time(), i) for i in ids),
            )
        return batch

    def set_stage(
        self, ids: Iterable[int], stage: str, reason: str | None = None, *, keep_batch: bool = False
    ) -> None:
        """Move rows to ``stage`` (sent, verified, rejected, or back to deidentified)."""
        batch = "batch" if keep_batch else "NULL"
        with self.tx() as conn:
            conn.executemany(
                f"UPDATE files SET stage=?, reason=COALESCE(?, reason), batch={batch}, updated=? "
                "WHERE id=?",
                ((stage, reason, time.time(), i) for i in ids),
            )

    def reset_missing_outputs(self) -> int:
        """Send back to ``seen`` de-identified rows whose output file has gone."""
        gone = [
            r.id
            for r in self.rows("deidentified")
            if r.out_path is None or not Path(r.out_path).exists()
        ]
        self.set_stage(gone, "seen")
        return len(gone)

    # -- reports ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT stage, COUNT(*) FROM files GROUP BY stage"))

    def reasons(self, stage: str) -> dict[str, int]:
        return dict(
            self.conn.execute(
                "SELECT COALESCE(reason, ''), COUNT(*) FROM files WHERE stage=? GROUP BY reason",
                (stage,),
            )
        )

    def pixels_cleaned(self) -> dict[str, int]:
        """Files whose pixels a Clean Pixel Data rule blanked, by rule (not quarantined)."""
        return dict(
            self.conn.execute(
                "SELECT COALESCE(detail, ''), COUNT(*) FROM files WHERE reason='pixels_cleaned' "
                "AND stage IN ('deidentified', 'sent', 'verified') GROUP BY detail"
            )
        )

    def listing(self, stage: str) -> list[tuple[str, str, str]]:
        """(path, reason, detail) of every row in ``stage``."""
        return [
            (p, r or "", d or "")
            for p, r, d in self.conn.execute(
                "SELECT path, reason, detail FROM files WHERE stage=? ORDER BY path", (stage,)
            )
        ]

    def mapping(self, table: str) -> list[tuple[str, str]]:
        if table not in ("uid_map", "patient_map"):
            raise ValueError(table)
        return list(self.conn.execute(f"SELECT old, new FROM {table} ORDER BY old"))
