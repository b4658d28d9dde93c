"""One contract suite run against both blob stores (ids ``fs`` and ``s3``).

The S3 store talks to a real moto server (the shared ``s3_endpoint`` fixture)
with a fresh bucket per test and multipart lowered to 5 MiB, so the large-object
tests go through multipart uploads.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import signal
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomhub.core.store import (
    CHUNK_SIZE,
    BlobStore,
    FilesystemStore,
    S3Store,
    blob_key_for,
    make_store,
)
from dicomhub.errors import BadRequest, ConfigurationError, NotFound, StorageError
from dicomhub.settings import S3Settings
from tests.fixtures.services import S3Endpoint

MIB = 1024 * 1024
LOWERED = 5 * MIB  # S3's smallest part size; the multipart threshold in these tests
KEY = "ab/cd/blob.dcm"
DATA = bytes(range(256)) * 40


def s3_settings(endpoint: S3Endpoint) -> S3Settings:
    return S3Settings(
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
    )


def unique_bucket() -> str:
    return f"store-test-{uuid.uuid4().hex[:20]}"


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A fresh, checked store of each kind."""
    made: BlobStore
    if request.param == "fs":
        made = FilesystemStore(tmp_path / "blobs")
    else:
        endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
        made = S3Store(
            unique_bucket(),
            "pre/fix",
            s3_settings(endpoint),
            multipart_threshold=LOWERED,
            part_size=LOWERED,
        )
    made.check()
    return made


def chunks_of(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def random_chunks(seed: int, total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """``total`` reproducible random bytes, generated chunk by chunk (never all at once)."""
    rng = random.Random(seed)
    for offset in range(0, total, size):
        yield rng.randbytes(min(size, total - offset))


class Boom(Exception):
    """What an interrupted source raises."""


def failing(chunks: Iterator[bytes], after: int) -> Iterator[bytes]:
    """Pass ``chunks`` through, then raise once ``after`` bytes have gone by."""
    sent = 0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        if sent >= after:
            raise Boom("source failed mid-way")


# -- round trips ---------------------------------------------------------------

SOURCES: dict[str, Callable[[bytes], Any]] = {
    "bytes": lambda data: data,
    "file": io.BytesIO,
    "iterator": lambda data: chunks_of(data, 1000),
    "list": lambda data: [data[:7], b"", data[7:]],
}


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("data", [b"", b"x", DATA], ids=["empty", "one", "10k"])
def test_round_trip(store: BlobStore, kind: str, data: bytes) -> None:
    info = store.put(KEY, SOURCES[kind](data))
    assert info.key == KEY
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert store.get(KEY) == data
    assert b"".join(store.open(KEY)) == data
    assert store.size(KEY) == len(data)
    assert store.exists(KEY)


def test_satisfies_protocol(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert store.url.startswith(("file:///", "s3://"))


def test_content_addressed_key(store: BlobStore) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    key = blob_key_for(digest)
    assert key == f"{digest[:2]}/{digest[2:4]}/{digest}.dcm"
    assert store.put(key, DATA).sha256 == digest
    assert list(store.keys(digest[:2])) == [key]


# -- ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (100, None),
        (0, 10),
        (100, 2000),
        (len(DATA) - 1, None),
        (9000, 20000),  # end past the blob: clamped
        (len(DATA), None),  # start at the end: nothing
        (20000, None),  # start past the end: nothing
        (20000, 30000),
        (5, 5),  # empty
        (0, 0),
    ],
)
def test_ranged_read(store: BlobStore, start: int, end: int | None) -> None:
    store.put(KEY, DATA)
    assert b"".join(store.open(KEY, start, end)) == DATA[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (0, -1), (10, 5), (-5, -1)])
def test_invalid_range(store: BlobStore, start: int, end: int | None) -> None:
    store.put(KEY, DATA)
    with pytest.raises(BadRequest):
        store.open(KEY, start, end)


def test_empty_range_of_missing_blob(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open(KEY, 5, 5)
    with pytest.raises(NotFound):
        store.open(KEY, 10**9)


# -- large objects -------------------------------------------------------------------


def test_large_object_streams(store: BlobStore) -> None:
    total = 12 * MIB + 12345  # more than two parts at the lowered threshold
    expected = hashlib.sha256()
    for chunk in random_chunks(7, total):
        expected.update(chunk)

    tracemalloc.start()
    try:
        info = store.put("large/blob.dcm", random_chunks(7, total))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert info.sha256 == expected.hexdigest()
    # About one part at most (the S3 store holds up to the threshold), never the whole blob.
    assert peak < LOWERED + 2 * MIB, f"put held {peak} bytes of a {total}-byte stream"

    got = hashlib.sha256()
    largest = 0
    for chunk in store.open("large/blob.dcm"):
        largest = max(largest, len(chunk))
        got.update(chunk)
    assert got.hexdigest() == info.sha256
    assert 0 < largest <= CHUNK_SIZE
    assert store.size("large/blob.dcm") == total
    tail = b"".join(store.open("large/blob.dcm", total - 100, total + 100))
    assert len(tail) == 100


def test_dropping_a_stream_early_is_clean(store: BlobStore) -> None:
    store.put(KEY, random_chunks(3, 3 * CHUNK_SIZE))
    stream = store.open(KEY)
    assert len(next(stream)) == CHUNK_SIZE
    del stream  # closes the file / connection without a ResourceWarning
    unstarted = store.open(KEY, 10)
    del unstarted
    assert store.size(KEY) == 3 * CHUNK_SIZE


# -- adopting spooled files ----------------------------------------------------------


def test_adopt_stores_every_file_and_leaves_them(store: BlobStore, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    files = []
    for i in range(5):
        data = DATA + bytes([i])
        path = spool / f"in-{i}.part"
        path.write_bytes(data)
        files.append((blob_key_for(hashlib.sha256(data).hexdigest()), path))
    files.append(files[0])  # the same content twice in one batch
    store.adopt(files)
    for key, path in files:
        assert store.get(key) == path.read_bytes()  # the spool file is still there
    assert sorted(store.keys()) == sorted({key for key, _ in files})
    store.adopt([])  # nothing to do


def test_adopt_keeps_an_existing_blob_and_survives_the_spool_file_going(
    store: BlobStore, tmp_path: Path
) -> None:
    path = tmp_path / "in.part"
    path.write_bytes(DATA)
    store.adopt([(KEY, path)])
    path.unlink()  # the blob does not depend on the spool file
    assert store.get(KEY) == DATA
    path.write_bytes(DATA)
    store.adopt([(KEY, path)])  # already stored: left alone
    assert store.get(KEY) == DATA


def test_adopt_of_a_missing_file_is_a_storage_error(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        store.adopt([(KEY, tmp_path / "gone.part")])
    assert not store.exists(KEY)


def test_filesystem_adopt_links_instead_of_copying(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "blobs")
    spool = tmp_path / "blobs" / ".incoming"
    spool.mkdir(parents=True)
    path = spool / "in.part"
    path.write_bytes(DATA)
    store.adopt([(KEY, path)])
    assert (tmp_path / "blobs" / KEY).stat().st_ino == path.stat().st_ino
    assert list(store.keys()) == [KEY]  # the hidden spool folder is never listed
    assert not [p for p in (tmp_path / "blobs").rglob("*.partial")]


# -- overwrite, missing, delete, keys --------------------------------------------------


def test_overwrite(store: BlobStore) -> None:
    store.put(KEY, b"first version")
    info = store.put(KEY, b"second")
    assert info.size == 6
    assert store.get(KEY) == b"second"
    assert store.size(KEY) == 6
    assert list(store.keys()) == [KEY]


def test_missing_key(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open(KEY)  # raised at once, not on the first chunk
    with pytest.raises(NotFound):
        store.get(KEY)
    with pytest.raises(NotFound):
        store.size(KEY)
    assert not store.exists(KEY)
    store.put("ab/other.dcm", b"x")
    with pytest.raises(NotFound):
        store.size("ab")  # a "directory" is not a blob
    assert not store.exists("ab")


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.put(KEY, DATA)
    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)
    store.delete("never/stored.dcm")
    assert list(store.keys()) == []


def test_keys_with_prefix(store: BlobStore) -> None:
    stored = ["ab/cd/1.dcm", "ab/cd/3.dcm", "ab/ce/2.dcm", "x.dcm", "abc.dcm"]
    for key in stored:
        store.put(key, key.encode())
    assert sorted(store.keys()) == sorted(stored)
    assert sorted(store.keys("ab/cd/")) == ["ab/cd/1.dcm", "ab/cd/3.dcm"]
    assert sorted(store.keys("ab/c")) == ["ab/cd/1.dcm", "ab/cd/3.dcm", "ab/ce/2.dcm"]
    assert sorted(store.keys("ab")) == ["ab/cd/1.dcm", "ab/cd/3.dcm", "ab/ce/2.dcm", "abc.dcm"]
    assert list(store.keys("ab/cd/3")) == ["ab/cd/3.dcm"]
    assert list(store.keys("zz")) == []
    assert list(store.keys("nope/deeper/")) == []


BAD_KEYS = ["../x", "/abs", "a//b", "a\x00b", "", "a/../b", "a/./b", "a/", ".hidden", "a\\b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(BadRequest):
        store.put(key, b"x")
    with pytest.raises(BadRequest):
        store.open(key)
    with pytest.raises(BadRequest):
        store.size(key)
    with pytest.raises(BadRequest):
        store.exists(key)
    with pytest.raises(BadRequest):
        store.delete(key)
    assert list(store.keys()) == []


# -- interrupted writes ----------------------------------------------------------------


@pytest.mark.parametrize("after", [1000, 7 * MIB], ids=["small", "multipart"])
def test_interrupted_write_keeps_old_version(store: BlobStore, after: int) -> None:
    store.put(KEY, b"old version")
    with pytest.raises(Boom):
        store.put(KEY, failing(random_chunks(1, 12 * MIB), after))
    assert store.get(KEY) == b"old version"
    assert list(store.keys()) == [KEY]
    with pytest.raises(Boom):
        store.put("ab/cd/new.dcm", failing(random_chunks(2, 12 * MIB), after))
    assert not store.exists("ab/cd/new.dcm")
    assert list(store.keys()) == [KEY]
    assert_no_leftovers(store)


def assert_no_leftovers(store: BlobStore) -> None:
    """No temporary file on disk, no pending multipart upload in the bucket."""
    if isinstance(store, FilesystemStore):
        files = [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()]
        assert files == [KEY]
    elif isinstance(store, S3Store):
        uploads = store._client.list_multipart_uploads(Bucket=store.bucket)
        assert uploads.get("Uploads", []) == []


# -- property ----------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.binary(max_size=3000),
    start=st.integers(min_value=0, max_value=3500),
    length=st.one_of(st.none(), st.integers(min_value=0, max_value=3500)),
    chunk=st.integers(min_value=1, max_value=1024),
)
def test_round_trip_property(
    store: BlobStore, data: bytes, start: int, length: int | None, chunk: int
) -> None:
    end = None if length is None else start + length
    info = store.put("prop/blob", chunks_of(data, chunk))
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert b"".join(store.open("prop/blob", start, end)) == data[start:end]


# -- filesystem specifics -------------------------------------------------------------------


def test_fs_root_created_on_first_use(tmp_path: Path) -> None:
    fs = FilesystemStore(tmp_path / "deep" / "root")
    assert not (tmp_path / "deep").exists()
    assert list(fs.keys()) == []
    assert not fs.exists(KEY)
    fs.put(KEY, b"x")
    assert (tmp_path / "deep" / "root" / KEY).read_bytes() == b"x"


def test_fs_unwritable_root(tmp_path: Path) -> None:
    # Tests may run as root, which ignores permissions: a file in the way always fails.
    (tmp_path / "file").write_bytes(b"not a directory")
    fs = FilesystemStore(tmp_path / "file" / "store")
    with pytest.raises(ConfigurationError) as excinfo:
        fs.check()
    message = str(excinfo.value)
    assert "\n" not in message
    assert fs.url in message
    with pytest.raises(ConfigurationError):
        fs.put(KEY, b"x")


def test_fs_never_lists_temporary_files(tmp_path: Path) -> None:
    fs = FilesystemStore(tmp_path)
    fs.put(KEY, b"x")
    (tmp_path / "ab" / "cd" / ".blob.dcm.0123.partial").write_bytes(b"half")
    (tmp_path / ".probe.1234").write_bytes(b"probe")
    assert list(fs.keys()) == [KEY]
    assert fs.url == tmp_path.as_uri()


def test_fs_write_error_keeps_old_version(tmp_path: Path) -> None:
    """A write the OS refuses mid-way (here: a file-size limit, like a full disk)."""
    resource = pytest.importorskip("resource")
    fs = FilesystemStore(tmp_path)
    fs.put(KEY, b"old version")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MIB, limit[1]))
    try:
        with pytest.raises(StorageError, match="cannot store"):
            fs.put(KEY, random_chunks(4, 2 * MIB))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert fs.get(KEY) == b"old version"
    assert_no_leftovers(fs)


# -- S3 specifics ----------------------------------------------------------------------------


def test_s3_check_creates_bucket(s3_endpoint: S3Endpoint) -> None:
    bucket = unique_bucket()
    s3 = S3Store(bucket, "", s3_settings(s3_endpoint))
    s3.check()
    s3.check()  # idempotent
    s3._client.head_bucket(Bucket=bucket)
    s3.put("k", b"v")
    assert s3._client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_s3_unreachable_endpoint() -> None:
    s3 = S3Store(
        "b",
        "",
        S3Settings(endpoint_url="http://127.0.0.1:9", access_key_id="x", secret_access_key="x"),
    )
    with pytest.raises(ConfigurationError) as excinfo:
        s3.check()
    assert "\n" not in str(excinfo.value)


def test_s3_server_verifies_what_it_receives(s3_endpoint: S3Endpoint) -> None:
    s3 = S3Store(
        unique_bucket(),
        "p",
        s3_settings(s3_endpoint),
        multipart_threshold=LOWERED,
        part_size=LOWERED,
    )
    s3.check()
    seen: list[tuple[str, dict[str, str]]] = []

    def record(request: Any, event_name: str, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        seen.append((event_name.rsplit(".", 1)[-1], headers))

    s3._client.meta.events.register("before-send.s3", record)
    info = s3.put("small", DATA)
    op, headers = seen[-1]
    assert op == "PutObject"
    assert headers["content-md5"] == base64_of(info.md5)
    assert headers["x-amz-checksum-sha256"] == base64_of(info.sha256)

    seen.clear()
    s3.put("large", random_chunks(5, 11 * MIB))
    ops = [op for op, _ in seen]
    assert ops == ["CreateMultipartUpload", *["UploadPart"] * 3, "CompleteMultipartUpload"]
    assert all("content-md5" in headers for op, headers in seen if op == "UploadPart")
    assert s3._client.head_object(Bucket=s3.bucket, Key="p/large")["ETag"].endswith('-3"')


def base64_of(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def test_s3_missing_bucket_is_a_storage_error(s3_endpoint: S3Endpoint) -> None:
    s3 = S3Store(unique_bucket(), "", s3_settings(s3_endpoint))
    with pytest.raises(StorageError, match="does not exist"):
        s3.put("k", b"v")


# -- factory and keys -------------------------------------------------------------------------


def test_make_store_file(tmp_path: Path) -> None:
    fs = make_store(tmp_path.as_uri(), S3Settings())
    assert isinstance(fs, FilesystemStore)
    assert fs.root == tmp_path
    plain = make_store(str(tmp_path / "x"), S3Settings())
    assert isinstance(plain, FilesystemStore)
    assert plain.root == tmp_path / "x"


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://bucket", "bucket", ""), ("s3://bucket/", "bucket", ""), ("s3://b/p/q/", "b", "p/q/")],
)
def test_make_store_s3(url: str, bucket: str, prefix: str) -> None:
    s3 = make_store(url, S3Settings(endpoint_url="http://127.0.0.1:9"))
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == (bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "http://host/x",
        "ftp://x",
        "file://remote/x",
        "s3:///prefix-only",
        "s3://b/../x",
        "",
        "gs://b",
    ],
)
def test_make_store_refuses(url: str) -> None:
    with pytest.raises(ConfigurationError):
        make_store(url, S3Settings())


@pytest.mark.parametrize("bad", ["", "AB" * 32, "ab" * 31, "../" + "a" * 61, "g" * 64])
def test_blob_key_for_refuses(bad: str) -> None:
    with pytest.raises(BadRequest):
        blob_key_for(bad)


def test_blob_key_for_suffix() -> None:
    digest = "0f" * 32
    assert blob_key_for(digest, suffix="") == f"0f/0f/{digest}"
    assert blob_key_for(digest, suffix=".json") == f"0f/0f/{digest}.json"
