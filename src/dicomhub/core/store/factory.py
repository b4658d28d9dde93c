"""Build a blob store from its URL (``file:///abs/path``, a plain path, ``s3://bucket/prefix``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from dicomhub.core.store.base import BlobStore
from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.errors import ConfigurationError
from dicomhub.settings import S3Settings


def make_store(url: str, s3: S3Settings) -> BlobStore:
    """The store a settings URL names; nothing is touched until first use or ``check()``.

    Parameters
    ----------
    url:
        ``file:///abs/path`` or a plain filesystem path, or ``s3://bucket[/prefix]``.
    s3:
        Endpoint and credentials, used only for ``s3://`` URLs.

    Raises
    ------
    ConfigurationError
        For any other scheme, a ``file:`` URL naming a remote host or a relative
        path, or an ``s3:`` URL without a bucket.
    """
    if "://" not in url:
        if not url.strip():
            raise ConfigurationError("the blob store URL is empty")
        return FilesystemStore(Path(url))
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"file store URL {url!r} names a remote host; use file:///path"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigurationError(f"file store URL {url!r} needs an absolute path")
        return FilesystemStore(Path(path))
    if parts.scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(f"S3 store URL {url!r} must look like s3://bucket/prefix")
        from dicomhub.core.store.s3 import S3Store  # boto3 comes with the [server] extra

        return S3Store(parts.netloc, unquote(parts.path), s3)
    raise ConfigurationError(
        f"unknown blob store URL {url!r}; use file:///path or s3://bucket/prefix"
    )
