"""Blob storage: a protocol, a filesystem store and an S3 store.

:class:`S3Store` is imported on first use, so the package (and the filesystem
store) works without boto3, which only the ``[server]`` extra installs.
"""

from typing import TYPE_CHECKING, Any

from dicomhub.core.store.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobSource,
    BlobStore,
    blob_key_for,
    check_key,
    verified_blob,
)
from dicomhub.core.store.factory import make_store
from dicomhub.core.store.filesystem import FilesystemStore

if TYPE_CHECKING:
    from dicomhub.core.store.s3 import S3Store

__all__ = [
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobSource",
    "BlobStore",
    "FilesystemStore",
    "S3Store",
    "blob_key_for",
    "check_key",
    "make_store",
    "verified_blob",
]


def __getattr__(name: str) -> Any:
    if name == "S3Store":
        from dicomhub.core.store.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
