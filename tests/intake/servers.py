"""Real ``dicomhub serve intake`` / ``serve dimse`` processes that tests start, kill and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dicomhub.context import IntakeContext
from tests.fixtures.http import free_port


def server_env(context: IntakeContext) -> dict[str, str]:
    """The environment that points a server process at the test's databases and store."""
    settings = context.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    env.update(
        DICOMHUB_DATA_DIR=str(settings.data_dir),
        DICOMHUB_INTAKE_DATABASE_URL=settings.database_url,
        DICOMHUB_PUBLIC_DATABASE_URL=settings.accounts_database_url,
        DICOMHUB_INTAKE_STORE=settings.store_url,
        DICOMHUB_SECRET_KEY=settings.secret_key.get_secret_value(),
    )
    return env


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Servers:
    """The intake web app and the DIMSE listener as two processes on fixed ports."""

    env: dict[str, str]
    cwd: Path
    http_port: int = field(default_factory=free_port)
    dimse_port: int = field(default_factory=free_port)
    web: subprocess.Popen[bytes] | None = None
    dimse: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.cwd / f"server-{self.starts}.log").open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "dicomhub", "serve", *args],
                env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()

    def start(self, timeout: float = 60.0) -> None:
        """Start both and wait until both answer (retrying a port still held by the dead)."""
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.web is None or self.web.poll() is not None:
                self.web = self._spawn("intake", "--port", str(self.http_port))
            if self.dimse is None or self.dimse.poll() is not None:
                self.dimse = self._spawn("dimse", "--port", str(self.dimse_port))
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the intake servers did not come up")
            time.sleep(0.1)

    def _ready(self) -> bool:
        if not _port_open(self.dimse_port):
            return False
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL both, no goodbye, and reap them."""
        for proc in (self.web, self.dimse):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            if proc is not None:
                proc.wait()

    def stop(self) -> None:
        for proc in (self.web, self.dimse):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
