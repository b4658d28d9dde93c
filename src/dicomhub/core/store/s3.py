"""A blob store in an S3 (or S3-compatible: MinIO, Ceph, moto) bucket.

``put`` streams: a source no larger than ``multipart_threshold`` is sent with
one PutObject carrying Content-MD5 and a SHA-256 checksum, so the server
verifies what it received; anything larger goes up as a multipart upload whose
parts each carry Content-MD5, and which is aborted on any failure.  S3 only
makes an object visible when PutObject or CompleteMultipartUpload succeeds, so
a failing source never leaves a partial object and never touches the old one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
from dicomhub.settings import S3Settings

LOGGER = logging.getLogger(__name__)

MIB = 1024 * 1024
#: S3's smallest allowed part (every part but the last).
MIN_PART_SIZE = 5 * MIB
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """Durable, atomic blobs under ``prefix`` in one bucket.

    Parameters
    ----------
    bucket:
        The bucket; :meth:`check` creates it if missing.
    prefix:
        Key prefix inside the bucket (``""`` for the whole bucket).
    s3:
        Endpoint, region and credentials; unset credentials use boto3's usual chain.
    multipart_threshold:
        Sources larger than this go up as multipart uploads.
    part_size:
        Size of each multipart part (at least 5 MiB, S3's minimum).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        s3: S3Settings,
        *,
        multipart_threshold: int = 8 * MIB,
        part_size: int = 8 * MIB,
    ) -> None:
        prefix = prefix.strip("/")
        if not bucket or (prefix and not is_valid_key(prefix)):
            raise ConfigurationError(f"invalid S3 store location s3://{bucket}/{prefix}")
        if part_size < MIN_PART_SIZE:
            raise ConfigurationError(f"S3 part size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._region = s3.region
        secret = s3.secret_access_key
        # Checksums only where we ask for them: S3-compatible servers differ in
        # which of botocore's newer default checksums they accept.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if s3.endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- writing -----------------------------------------------------------

    def put(self, key: str, source: BlobSource) -> BlobInfo:
        """Store ``source`` under ``key``: verified by the server, atomic, replacing any old."""
        name = self._name(key)
        digests = Digests()
        head = bytearray()
        chunks = iter_source(source)
        for chunk in chunks:
            digests.update(chunk)
            head += chunk
            if len(head) > self.multipart_threshold:
                self._put_multipart(key, name, head, chunks, digests)
                break
        else:
            info = digests.info(key)
            self._call(
                "store",
                key,
                self._client.put_object,
                Bucket=self.bucket,
                Key=name,
                Body=head,
                ContentMD5=_b64(bytes.fromhex(info.md5)),
                ChecksumSHA256=_b64(bytes.fromhex(info.sha256)),
            )
        LOGGER.debug("stored %s (%d bytes) in %s", key, digests.size, self.url)
        return digests.info(key)

    def adopt(self, files: Sequence[tuple[str, Path]]) -> None:
        """Upload each local file under its key (verified by the server); the files stay."""
        for key, path in files:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below, errors mapped
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
            with handle:
                self.put(key, handle)

    def _put_multipart(
        self, key: str, name: str, head: bytearray, chunks: Iterator[bytes], digests: Digests
    ) -> None:
        """Send ``head`` and the rest of ``chunks`` as parts; abort on any failure."""
        upload = _Multipart(self, key, name)
        try:
            upload.start(head)
            for chunk in chunks:
                digests.update(chunk)
                upload.write(chunk)
            upload.finish()
        except BaseException:
            upload.abort()
            raise

    def delete(self, key: str) -> None:
        """Remove the blob; a missing key is not an error."""
        self._call(
            "delete", key, self._client.delete_object, Bucket=self.bucket, Key=self._name(key)
        )

    # -- reading -----------------------------------------------------------

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` with one ranged GetObject; NotFound raised here."""
        check_range(start, end)
        name = self._name(key)
        if end == start:
            self.size(key)  # an empty range still needs the blob to exist
            return iter(())
        ranged: dict[str, str] = {}
        if start or end is not None:
            ranged["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name, **ranged)
        except ClientError as exc:
            if _code(exc) == "InvalidRange":  # start at or past the end
                self.size(key)
                return iter(())
            raise self._error("read", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read", key, exc) from exc
        body = response["Body"]
        return _S3Chunks(body.read, body.close, int(response["ContentLength"]), self, key)

    def get(self, key: str) -> bytes:
        """The whole blob in memory (small blobs only)."""
        return b"".join(self.open(key))

    def size(self, key: str) -> int:
        """The blob's size in bytes; NotFound if absent."""
        head = self._call(
            "read", key, self._client.head_object, Bucket=self.bucket, Key=self._name(key)
        )
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (paginated ListObjectsV2)."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    if is_valid_key(key):
                        yield key
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", prefix, exc) from exc

    def check(self) -> None:
        """Create the bucket if missing and prove it writable with a probe object."""
        try:
            self._ensure_bucket()
            probe = f"{self.prefix}.probe.{secrets.token_hex(8)}"
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"probe")
            self._client.delete_object(Bucket=self.bucket, Key=probe)
        except (BotoCoreError, ClientError) as exc:
            raise ConfigurationError(f"blob store {self.url} is not usable: {exc}") from exc

    # -- helpers -------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        LOGGER.info("creating bucket %s", self.bucket)
        extra: dict[str, Any] = {}
        if self._region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        with contextlib.suppress(self._client.exceptions.BucketAlreadyOwnedByYou):
            self._client.create_bucket(Bucket=self.bucket, **extra)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, action: str, key: str, method: Any, **kwargs: Any) -> Any:
        """One S3 request; ClientError and BotoCoreError become archive errors."""
        try:
            return method(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(action, key, exc) from exc

    def _error(self, action: str, key: str, exc: Exception) -> NotFound | StorageError:
        if isinstance(exc, ClientError) and _code(exc) in _MISSING:
            return NotFound(f"no blob {key!r} in {self.url}")
        if isinstance(exc, ClientError) and _code(exc) == "NoSuchBucket":
            return StorageError(f"cannot {action} {key!r}: bucket {self.bucket!r} does not exist")
        return StorageError(f"cannot {action} blob {key!r} in {self.url}: {exc}")


class _Multipart:
    """One multipart upload, fed chunk by chunk; holds at most about one part in memory."""

    def __init__(self, store: S3Store, key: str, name: str) -> None:
        self._store = store
        self._key = key
        self._name = name
        self._size = store.part_size
        self._parts: list[dict[str, Any]] = []
        self._part = bytearray()
        created = store._call(
            "store", key, store._client.create_multipart_upload, Bucket=store.bucket, Key=name
        )
        self._id: str = created["UploadId"]

    def start(self, head: bytearray) -> None:
        """Take over ``head`` (no copy) as the first part(s)."""
        self._part = head
        while len(self._part) >= self._size:
            rest = self._part[self._size :]
            del self._part[self._size :]
            self._send()
            self._part = rest

    def write(self, data: bytes) -> None:
        """Append ``data``, sending each part as soon as it is full."""
        offset = 0
        with memoryview(data) as view:
            while offset < len(data):
                take = min(self._size - len(self._part), len(data) - offset)
                self._part += view[offset : offset + take]
                offset += take
                if len(self._part) == self._size:
                    self._send()

    def finish(self) -> None:
        """Send the last (short) part and make the object visible."""
        if self._part or not self._parts:
            self._send()
        store = self._store
        store._call(
            "store",
            self._key,
            store._client.complete_multipart_upload,
            Bucket=store.bucket,
            Key=self._name,
            UploadId=self._id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        """Drop the parts sent so far; nothing ever became visible."""
        store = self._store
        try:
            store._client.abort_multipart_upload(
                Bucket=store.bucket, Key=self._name, UploadId=self._id
            )
        except (BotoCoreError, ClientError) as exc:
            LOGGER.warning("could not abort upload %s of %s: %s", self._id, self._name, exc)

    def _send(self) -> None:
        body, self._part = self._part, bytearray()
        number = len(self._parts) + 1
        store = self._store
        sent = store._call(
            "store",
            self._key,
            store._client.upload_part,
            Bucket=store.bucket,
            Key=self._name,
            UploadId=self._id,
            PartNumber=number,
            Body=body,
            ContentMD5=_b64(hashlib.md5(body, usedforsecurity=False).digest()),
        )
        self._parts.append({"ETag": sent["ETag"], "PartNumber": number})
        body.clear()  # free it now, even if a caller still holds the bytearray


class _S3Chunks(ChunkStream):
    """A GetObject body in chunks; network errors mid-stream become StorageError."""

    def __init__(self, read: Any, close: Any, remaining: int, store: S3Store, key: str) -> None:
        super().__init__(read, close, remaining)
        self._store = store
        self._key = key

    def __next__(self) -> bytes:
        try:
            return super().__next__()
        except (BotoCoreError, ClientError, OSError) as exc:
            self.close()
            raise self._store._error("read", self._key, exc) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
