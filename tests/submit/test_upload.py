"""The STOW-RS client against a real HTTPS server on loopback that fails on purpose."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme
from pydicom import dcmread

from dicomhub.errors import Unauthorized
from dicomhub.sample import SampleManifest
from dicomhub.submit.upload import Part, StowClient, UploadError, make_client
from tests.submit.misbehaving import Script, misbehaving_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def parts(sample: tuple[Path, SampleManifest]) -> list[Part]:
    files = sorted(sample[0].rglob("*.dcm"))[:5]
    return [
        Part(n, str(dcmread(f, stop_before_pixels=True).SOPInstanceUID), f, f.stat().st_size)
        for n, f in enumerate(files)
    ]


@contextmanager
def stow(
    ca: trustme.CA, context: ssl.SSLContext, script: Script, retries: int = 3
) -> Iterator[tuple[StowClient, list[float]]]:
    delays: list[float] = []
    with misbehaving_server(context, script) as url:
        pem = ca.cert_pem.bytes().decode()
        with make_client(url, "tok", pem, timeout=10) as client:
            yield StowClient(client, retries=retries, backoff=0.2, sleep=delays.append), delays


def test_all_stored(ca: trustme.CA, server_context: ssl.SSLContext, parts: list[Part]) -> None:
    script = Script([])
    with stow(ca, server_context, script) as (client, _):
        result = client.store(parts)
    assert result.stored == {p.sop_uid for p in parts}
    assert result.failed == {}
    assert script.received == [p.sop_uid for p in parts]


@pytest.mark.parametrize("failures", [["500"], ["drop"], ["500", "drop", "500"]])
def test_retried_with_backoff_until_stored(
    ca: trustme.CA, server_context: ssl.SSLContext, parts: list[Part], failures: list[str]
) -> None:
    script = Script(list(failures))
    with stow(ca, server_context, script) as (client, delays):
        result = client.store(parts)
    assert result.stored == {p.sop_uid for p in parts}
    assert result.attempts == len(failures) + 1
    assert script.requests == [*failures, "ok"]
    assert len(delays) == len(failures)
    assert all(0.1 <= d <= 0.2 * 2**n for n, d in enumerate(delays))
    assert script.received == [p.sop_uid for p in parts]  # stored once, nothing doubled


def test_gives_up_after_retries_with_a_clear_message(
    ca: trustme.CA, server_context: ssl.SSLContext, parts: list[Part]
) -> None:
    script = Script(["500", "drop", "500"])
    with (
        stow(ca, server_context, script, retries=2) as (client, _),
        pytest.raises(
            UploadError, match=r"did not take a batch of 5 after 3 attempts .*run the same command"
        ),
    ):
        client.store(parts)
    assert script.received == []


def test_refused_credential_stops_at_once(
    ca: trustme.CA, server_context: ssl.SSLContext, parts: list[Part]
) -> None:
    script = Script(["401"])
    with (
        stow(ca, server_context, script) as (client, _),
        pytest.raises(Unauthorized, match="refused the kit's credential"),
    ):
        client.store(parts)
    assert script.requests == ["401"]


def test_per_instance_failure_is_reported(
    ca: trustme.CA, server_context: ssl.SSLContext, parts: list[Part]
) -> None:
    with stow(ca, server_context, Script(["reject-first"])) as (client, _):
        result = client.store(parts)
    assert result.failed == {parts[0].sop_uid: "49442"}
    assert result.stored == {p.sop_uid for p in parts[1:]}


def test_untrusted_certificate_is_refused(
    server_context: ssl.SSLContext, parts: list[Part]
) -> None:
    other = trustme.CA().cert_pem.bytes().decode()
    with (
        misbehaving_server(server_context, Script([])) as url,
        make_client(url, "tok", other, timeout=5) as client,
        pytest.raises(UploadError, match="ConnectError"),
    ):
        StowClient(client, retries=0, sleep=lambda _: None).store(parts)
