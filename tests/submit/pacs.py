"""The PACS side of `submit listen` tests: the real listener process, dcmtk and pynetdicom."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, build_context

LISTEN_AE = "DICOMHUB_SUBMIT"


@dataclass
class Listener:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout)


def site_env() -> dict[str, str]:
    """The site's environment: none of the archive's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}


@contextmanager
def listener(*args: str, log: Path) -> Iterator[Listener]:
    """`dicomhub submit listen ARGS --port 0` in its own process group; stopped on exit."""
    command = [sys.executable, "-m", "dicomhub", "submit", "listen", "--port", "0",
               "--host", "127.0.0.1", *args]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=site_env())  # fmt: skip
    deadline = time.monotonic() + 60
    found = None
    while found is None:
        found = re.search(r"listening as \S+ on [\d.]+:(\d+)", log.read_text(errors="replace"))
        if found is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    running = Listener(proc, int(found.group(1)), log)
    try:
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def need_dcmtk() -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk is not installed")


def storescu(port: int, files: Sequence[Path], *flags: str, aet: str = "PACS") -> str:
    """dcmtk storescu, one association, TCP_NODELAY as a real PACS set-up would have it."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    done = subprocess.run(
        ["storescu", "-aet", aet, "-aec", LISTEN_AE, *flags, "127.0.0.1", str(port),
         *map(str, files)],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    return done.stdout + done.stderr


def pynetdicom_send(port: int, files: Sequence[Path], aet: str = "PACS") -> dict[str, int]:
    """Send each file as stored (no re-encoding), one association; SOP UID -> status."""
    headers = [dcmread(path, stop_before_pixels=True) for path in files]
    pairs = {(str(h.SOPClassUID), str(h.file_meta.TransferSyntaxUID)) for h in headers}
    ae = AE(ae_title=aet)
    ae.requested_contexts = [build_context(cls, [syntax]) for cls, syntax in sorted(pairs)]
    assoc = ae.associate("127.0.0.1", port, ae_title=LISTEN_AE)
    assert assoc.is_established
    assert assoc.dul.socket is not None
    assert assoc.dul.socket.socket is not None
    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    statuses: dict[str, int] = {}
    try:
        for path, header in zip(files, headers, strict=True):
            answer = assoc.send_c_store(path)
            statuses[str(header.SOPInstanceUID)] = int(answer.Status) if answer else -1
    finally:
        assoc.release()
    return statuses


def wait_for(condition: object, what: str, timeout: float = 180) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
