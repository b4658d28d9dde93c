"""The pinned-package check that guards the viewer build fetched at test-setup time."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tests.publish.viewer.npm import FetchFailed, Pinned, check_integrity
from tests.publish.viewer.ohif import OHIF_APP


def test_integrity_accepts_the_pinned_bytes_only() -> None:
    data = b"package bytes"
    pinned = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    check_integrity(data, pinned)
    with pytest.raises(FetchFailed, match="integrity mismatch"):
        check_integrity(data + b"!", pinned)
    with pytest.raises(FetchFailed, match="unsupported"):
        check_integrity(data, "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode())


def test_tarball_address_and_cache_name() -> None:
    assert OHIF_APP.tarball_url == "https://registry.npmjs.org/@ohif/app/-/app-3.13.2.tgz"
    assert OHIF_APP.slug == "ohif+app-3.13.2"
    plain = Pinned("dicomweb-client", "0.11.3", "sha512-x")
    assert plain.tarball_url.endswith("/dicomweb-client/-/dicomweb-client-0.11.3.tgz")
