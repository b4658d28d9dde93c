"""The download's state file: one SQLite row per series, in DEST.

A series moves ``pending`` → ``verified`` (every file checked, waiting in the
staging folder under a temporary name) → ``done`` (renamed to its final
place).  The row changes only after the work it records is on disk, so a run
killed at any moment resumes where it stopped: a ``verified`` series is moved
into place without being fetched again, and a ``done`` one is never touched.
Side exits: ``failed`` (retried on the next run), ``unknown`` (the server does
not have it, or not for this caller) and ``denied``.

Manifest lines that are not UIDs, and UIDs listed twice, go to ``problems``.
All writes happen on the thread that opened the database; workers hand results back.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomhub.errors import StorageError

PENDING = "pending"
VERIFIED = "verified"
DONE = "done"
FAILED = "failed"
UNKNOWN = "unknown"
DENIED = "denied"
STATUSES = (PENDING, VERIFIED, DONE, FAILED, UNKNOWN, DENIED)

#: Metadata columns kept per series (what the layout and the CSV report need).
META_COLUMNS = (
    "collection",
    "patient_id",
    "study_uid",
    "study_date",
    "study_description",
    "series_description",
    "series_number",
    "modality",
    "manufacturer",
    "sop_class_uid",
    "license_name",
    "license_url",
    "doi",
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    uid TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    has_meta INTEGER NOT NULL DEFAULT 0,
    {", ".join(f"{c} TEXT" for c in META_COLUMNS)},
    images INTEGER,
    expected_size INTEGER,
    files INTEGER,
    bytes INTEGER,
    sha256 TEXT,
    path TEXT,
    staged TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    fetched_at TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS series_status ON series (status, seq);
CREATE TABLE IF NOT EXISTS problems (
    line INTEGER NOT NULL, value TEXT NOT NULL, kind TEXT NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS planned (uid TEXT PRIMARY KEY);
"""

STATE_DIR = ".dicomhub-download"
STATE_FILE = "state.sqlite"


class DiskFull(StorageError):
    """DEST (or the state file in it) ran out of space; the run stopped, nothing is lost."""

    code = "disk_full"


class StateError(StorageError):
    """The state file cannot be read or written."""


def _wrap(exc: sqlite3.Error, path: Path) -> StorageError:
    text = str(exc)
    if "full" in text.lower():
        return DiskFull(
            f"no space left in {path.parent.parent} for the state file; "
            "free some and run the same command again"
        )
    if "disk i/o error" in text.lower():
        return DiskFull(
            f"the state file {path} cannot be written (disk I/O error): the disk may be full "
            "or a file-size limit reached; free some space and run the same command again"
        )
    return StateError(f"the state file {path} cannot be used: {text}")


@dataclass(frozen=True)
class Counts:
    """Series per status, and the bytes expected and fetched."""

    by_status: Mapping[str, int]
    expected_bytes: int
    fetched_bytes: int
    files: int

    def __getitem__(self, status: str) -> int:
        return self.by_status.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


class State:
    """The state database of one DEST."""

    def __init__(self, dest: Path) -> None:
        self.folder = dest / STATE_DIR
        self.path = self.folder / STATE_FILE
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc
        self.db.row_factory = sqlite3.Row
        self._seq = 0

    def close(self) -> None:
        self.db.close()

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _wrap(exc, self.path) from exc

    # -- meta ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- planning ----------------------------------------------------------------

    def begin_plan(self) -> None:
        """Forget the problems of an earlier source; the new plan reports its own."""
        self.execute("BEGIN")
        self.execute("DELETE FROM problems")
        self.execute("DELETE FROM planned")
        self._seq = int(self.execute("SELECT COALESCE(MAX(seq), 0) FROM series").fetchone()[0])

    def plan(self, uid: str, line: int) -> bool:
        """Add ``uid`` (new series start ``pending``); False if this plan listed it already."""
        if self.execute("INSERT OR IGNORE INTO planned (uid) VALUES (?)", (uid,)).rowcount == 0:
            self.problem(line, uid, "duplicate")
            return False
        self._seq += 1
        self.execute(
            "INSERT OR IGNORE INTO series (uid, seq, updated) VALUES (?, ?, ?)",
            (uid, self._seq, time.time()),
        )
        # The server may know it now (a credential given, a collection released): ask again.
        self.execute(
            "UPDATE series SET status = 'pending', has_meta = 0 WHERE uid = ? "
            "AND status IN ('unknown', 'denied')",
            (uid,),
        )
        return True

    def problem(self, line: int, value: str, kind: str) -> None:
        self.execute(
            "INSERT INTO problems (line, value, kind) VALUES (?, ?, ?)", (line, value, kind)
        )

    def end_plan(self) -> int:
        """Commit the plan; the number of distinct series it listed."""
        count = int(self.execute("SELECT COUNT(*) FROM planned").fetchone()[0])
        self.execute("COMMIT")
        return count

    def problems(self) -> Iterator[sqlite3.Row]:
        yield from self.execute("SELECT line, value, kind FROM problems ORDER BY line")

    # -- metadata ------------------------------------------------------------------

    def needing_meta(self, limit: int, after: int = 0) -> list[tuple[int, str]]:
        rows = self.execute(
            "SELECT seq, uid FROM series WHERE has_meta = 0 AND status IN ('pending', 'failed') "
            "AND uid IN (SELECT uid FROM planned) AND seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def set_meta_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        columns = [*META_COLUMNS, "images", "expected_size"]
        sets = ", ".join(f"{c} = ?" for c in columns)
        self.execute("BEGIN")
        self.executemany(
            f"UPDATE series SET {sets}, has_meta = 1 WHERE uid = ?",
            ([*(row.get(c) for c in columns), row["uid"]] for row in rows),
        )
        self.execute("COMMIT")

    def mark_unknown(self, uids: Iterable[str], status: str = UNKNOWN) -> None:
        now = time.time()
        self.execute("BEGIN")
        self.executemany(
            "UPDATE series SET status = ?, updated = ?, error = ? WHERE uid = ? "
            "AND status NOT IN ('done', 'verified')",
            ((status, now, "not on the server, or not visible to you", u) for u in uids),
        )
        self.execute("COMMIT")

    # -- fetching ------------------------------------------------------------------

    def to_fetch(self, after: int, limit: int) -> list[sqlite3.Row]:
        """The next planned series to fetch after ``seq``, with their metadata."""
        return list(
            self.execute(
                "SELECT * FROM series WHERE status IN ('pending', 'failed') "
                "AND uid IN (SELECT uid FROM planned) AND seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
        )

    def to_fetch_ready(self, after: int, limit: int, pending_only: bool) -> list[sqlite3.Row]:
        """Like :meth:`to_fetch`, for series whose metadata is in (``pending_only``: no failed)."""
        statuses = "('pending')" if pending_only else "('pending', 'failed')"
        return list(
            self.execute(
                f"SELECT * FROM series WHERE status IN {statuses} AND has_meta = 1 "
                "AND uid IN (SELECT uid FROM planned) AND seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
        )

    def staged(self) -> list[sqlite3.Row]:
        """Series verified in staging but not yet moved into place (a run stopped between)."""
        return list(self.execute("SELECT * FROM series WHERE status = 'verified'"))

    def done_paths(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        rows = self.execute(
            "SELECT seq, uid, path FROM series WHERE status = 'done' AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def mark_verified(
        self, uid: str, staged: str, final: str, files: int, nbytes: int, sha256: str
    ) -> None:
        self.execute(
            "UPDATE series SET status = 'verified', staged = ?, path = ?, files = ?, bytes = ?, "
            "sha256 = ?, error = NULL, updated = ? WHERE uid = ?",
            (staged, final, files, nbytes, sha256, time.time(), uid),
        )

    def mark_done(self, uid: str, fetched_at: str) -> None:
        self.execute(
            "UPDATE series SET status = 'done', staged = NULL, fetched_at = ?, updated = ? "
            "WHERE uid = ?",
            (fetched_at, time.time(), uid),
        )

    def mark_failed(self, uid: str, status: str, error: str, attempts: int) -> None:
        self.execute(
            "UPDATE series SET status = ?, error = ?, attempts = attempts + ?, updated = ? "
            "WHERE uid = ?",
            (status, error[:500], attempts, time.time(), uid),
        )

    def reset_to_pending(self, uid: str) -> None:
        self.execute(
            "UPDATE series SET status = 'pending', staged = NULL, updated = ? WHERE uid = ?",
            (time.time(), uid),
        )

    # -- reporting -------------------------------------------------------------------

    def counts(self, planned_only: bool = True) -> Counts:
        where = "WHERE uid IN (SELECT uid FROM planned)" if planned_only else ""
        rows = self.execute(
            f"SELECT status, COUNT(*), COALESCE(SUM(expected_size), 0), "
            f"COALESCE(SUM(bytes), 0), COALESCE(SUM(files), 0) FROM series {where} "
            "GROUP BY status"
        ).fetchall()
        by_status = {str(r[0]): int(r[1]) for r in rows}
        expected = sum(int(r[2]) for r in rows if r[0] not in (UNKNOWN, DENIED))
        fetched = sum(int(r[3]) for r in rows if r[0] == DONE)
        files = sum(int(r[4]) for r in rows if r[0] == DONE)
        return Counts(by_status, expected, fetched, files)

    def to_fetch_totals(self) -> tuple[int, int]:
        """How many planned series are left to fetch, and their expected bytes."""
        row = self.execute(
            "SELECT COUNT(*), COALESCE(SUM(expected_size), 0) FROM series "
            "WHERE status IN ('pending', 'failed') AND uid IN (SELECT uid FROM planned)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def rows(self, statuses: Iterable[str]) -> Iterator[sqlite3.Row]:
        wanted = tuple(statuses)
        marks = ", ".join("?" for _ in wanted)
        yield from self.execute(
            f"SELECT * FROM series WHERE status IN ({marks}) ORDER BY seq", wanted
        )


__all__ = [
    "DONE",
    "FAILED",
    "META_COLUMNS",
    "PENDING",
    "STATE_DIR",
    "UNKNOWN",
    "VERIFIED",
    "Counts",
    "DiskFull",
    "State",
    "StateError",
]
