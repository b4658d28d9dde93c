"""`dicomhub demo` end to end: a real process sets up, serves and publishes the sample."""

from __future__ import annotations

import queue
import ssl
import threading
import time
from pathlib import Path

import httpx
from tests.fixtures.http import cli_process, free_port


def test_demo_publishes_the_sample_through_submit_intake_and_promotion(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("public", "intake", "dimse")}
    env = {
        "DICOMHUB_DATA_DIR": str(tmp_path / "var"),
        "DICOMHUB_PUBLIC_PORT": str(ports["public"]),
        "DICOMHUB_INTAKE_PORT": str(ports["intake"]),
        "DICOMHUB_DIMSE_PORT": str(ports["dimse"]),
    }
    lines: queue.Queue[str] = queue.Queue()
    with cli_process(["demo", "--patients", "1"], env, tmp_path) as proc:
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for raw in stdout:
                lines.put(raw.decode(errors="replace"))

        threading.Thread(target=pump, daemon=True).start()
        seen: list[str] = []
        deadline = time.monotonic() + 300
        while not any("published" in line or "failed" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            assert proc.poll() is None, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        output = "".join(seen)
        assert "DEMO-CT published" in output, output
        assert f"http://127.0.0.1:{ports['public']}/" in output
        assert f"https://127.0.0.1:{ports['intake']}/" in output

        public = f"http://127.0.0.1:{ports['public']}"
        assert httpx.get(f"{public}/healthz").json()["status"] == "ok"
        cert = tmp_path / "var" / "keys" / "intake-cert.pem"
        intake = httpx.get(
            f"https://127.0.0.1:{ports['intake']}/healthz",
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert intake.json()["status"] == "ok"
        collections = httpx.get(f"{public}/api/collections").json()
        assert [c["name"] for c in collections] == ["DEMO-CT"]
        assert collections[0]["instances"] > 0
        values = httpx.get(f"{public}/nbia-api/services/v4/getCollectionValues").json()
        assert values == [{"Collection": "DEMO-CT"}]
