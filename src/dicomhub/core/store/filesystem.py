"""A blob store in a local (or mounted) directory.

Each blob is one file at ``root/<key>``.  A ``put`` writes a hidden temporary
file beside its target (``.<name>.<random>.partial``; key parts may not start
with a dot, so it is never a valid key), fsyncs it, renames it into place and
fsyncs the directory: readers see either the old blob or the new one, and a
crash or a failing source leaves at worst a hidden temporary file that
:meth:`FilesystemStore.keys` never lists.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar, overload

from dicomhub.core.store.base import (
    BlobInfo,
    BlobSource,
    ChunkStream,
    Digests,
    check_key,
    check_range,
    is_valid_key,
    iter_source,
)
from dicomhub.errors import ConfigurationError, NotFound, StorageError

LOGGER = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: Concurrent fsyncs in one :meth:`FilesystemStore.adopt`.
_SYNC_WORKERS = 16


class FilesystemStore:
    """Durable, atomic blobs under one directory, created on first use.

    Parameters
    ----------
    root:
        The store's directory; made absolute, created (with parents) when first needed.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root.expanduser()))
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FilesystemStore({str(self.root)!r})"

    # -- writing -----------------------------------------------------------

    def put(self, key: str, source: BlobSource) -> BlobInfo:
        """Store ``source`` under ``key``: durable and atomic, replacing any old blob."""
        target = self._path(key)
        directory = self._make_dirs(target.parent)
        temp = directory / f".{target.name}.{secrets.token_hex(8)}.partial"
        digests = Digests()
        try:
            what = f"cannot store {key!r} in {self.url}"
            fd = _storage(what, os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as handle:
                for chunk in iter_source(source):
                    digests.update(chunk)
                    _storage(what, handle.write, chunk)
                _storage(what, handle.flush)
                _storage(what, os.fsync, handle.fileno())
            _storage(what, os.replace, temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        _fsync_dir(directory)
        LOGGER.debug("stored %s (%d bytes) in %s", key, digests.size, self.url)
        return digests.info(key)

    def adopt(self, files: Sequence[tuple[str, Path]]) -> None:
        """Link each file into place under its key, durable before this returns.

        Two rounds of fsyncs, each run side by side (the disk's journal commits
        concurrent fsyncs together, several times faster than one after
        another): the files' data and the parents of any new directories, then
        - after the links - the directories holding them.  A key already stored
        is left alone: keys name their content, and a blob only ever takes its
        final name once its bytes are durable.  A file on another filesystem is
        copied by :meth:`put`.  The files themselves are left for the caller.
        """
        if not files:
            return
        device = self._make_dirs(self.root).stat().st_dev
        local: dict[Path, Path] = {}
        for key, path in files:
            target = self._path(key)
            try:
                same = os.stat(path).st_dev == device
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
            if not same:
                with open(path, "rb") as handle:
                    self.put(key, handle)
            elif target not in local and not target.is_file():
                local[target] = path
        if not local:
            return
        directories = list(dict.fromkeys(target.parent for target in local))
        changed: list[Path] = []
        for directory in directories:
            changed.extend(self._make_dirs(directory, sync=False))
        _parallel(_fsync_file, [*local.values(), *dict.fromkeys(changed)])
        for target, path in local.items():
            temp = target.parent / f".{target.name}.{secrets.token_hex(8)}.partial"
            what = f"cannot store {target.name} in {self.url}"
            try:
                _storage(what, os.link, path, temp)
                _storage(what, os.replace, temp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
                raise
        _parallel(_fsync_file, directories)

    def delete(self, key: str) -> None:
        """Remove the blob; a missing key (or a directory) is not an error."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot delete blob {key!r} in {self.url}: {exc.strerror}") from exc
        _fsync_dir(path.parent)

    # -- reading -----------------------------------------------------------

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` in chunks; NotFound is raised here, not lazily."""
        check_range(start, end)
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"no blob {key!r} in {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read blob {key!r} in {self.url}: {exc.strerror}") from exc
        try:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise NotFound(f"no blob {key!r} in {self.url}")
            handle.seek(start)
        except BaseException:
            handle.close()
            raise
        return ChunkStream(handle.read, handle.close, None if end is None else end - start)

    def get(self, key: str) -> bytes:
        """The whole blob in memory (small blobs only)."""
        return b"".join(self.open(key))

    def size(self, key: str) -> int:
        """The blob's size in bytes; NotFound if absent."""
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"no blob {key!r} in {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot stat blob {key!r} in {self.url}: {exc.strerror}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise NotFound(f"no blob {key!r} in {self.url}")
        return info.st_size

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``; temporary files are never listed."""
        # Walk only below the deepest directory the prefix names.
        head = prefix.rpartition("/")[0]
        if head and not is_valid_key(head):
            return
        start = self.root / head if head else self.root
        for dirpath, dirnames, filenames in os.walk(start, onerror=self._walk_error):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if relative == "." else f"{relative}/"
            for name in filenames:
                key = base + name
                if key.startswith(prefix) and is_valid_key(key):
                    yield key

    def check(self) -> None:
        """Create the root if needed and prove it writable with a probe file."""
        self._make_dirs(self.root)
        probe = self.root / f".probe.{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"blob store {self.url} is not writable: {exc.strerror or exc}"
            ) from exc

    # -- helpers -------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @overload
    def _make_dirs(self, directory: Path) -> Path: ...

    @overload
    def _make_dirs(self, directory: Path, *, sync: Literal[False]) -> list[Path]: ...

    def _make_dirs(self, directory: Path, *, sync: bool = True) -> Path | list[Path]:
        """Create ``directory`` and its missing parents.

        With ``sync`` each new entry is fsynced and the directory returned; without,
        the directories whose entries changed are returned for the caller to fsync.
        """
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        changed: list[Path] = []
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise self._dir_error(path, "a file is in the way") from None
            except OSError as exc:
                raise self._dir_error(path, exc.strerror or str(exc)) from exc
            if sync:
                _fsync_dir(path.parent)
            else:
                changed.append(path.parent)
        return directory if sync else changed

    def _dir_error(self, path: Path, reason: str) -> ConfigurationError | StorageError:
        """The store root failing is a configuration error; a blob directory, storage."""
        where = f"cannot create directory {path}: {reason}"
        if path == self.root or path in self.root.parents:
            return ConfigurationError(f"blob store {self.url} is not usable: {where}")
        return StorageError(f"blob store {self.url}: {where}")

    def _walk_error(self, exc: OSError) -> None:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise StorageError(f"cannot list {self.url}: {exc.strerror or exc}") from exc


def _storage(what: str, call: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run one OS call, turning OSError (disk full, I/O error...) into StorageError."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise StorageError(f"{what}: {exc.strerror or exc}") from exc


def _fsync_file(path: Path) -> None:
    """fsync a file or a directory (both open read-only)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot make {path} durable: {exc.strerror or exc}") from exc


def _parallel(call: Callable[[Path], None], paths: list[Path]) -> None:
    """Run ``call`` over ``paths``, several at once when there are several (I/O bound)."""
    if len(paths) == 1:
        call(paths[0])
    elif paths:
        for _ in _sync_pool().map(call, paths):
            pass


@functools.cache
def _sync_pool() -> ThreadPoolExecutor:
    """One pool for the process's fsyncs (threads are cheap to keep, not to start)."""
    return ThreadPoolExecutor(max_workers=_SYNC_WORKERS, thread_name_prefix="fsync")


def _fsync_dir(directory: Path) -> None:
    """Make a rename or new entry in ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StorageError(f"cannot open directory {directory}: {exc.strerror}") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot fsync directory {directory}: {exc.strerror}") from exc
    finally:
        os.close(fd)
