"""A real, small HTTPS server on loopback that misbehaves on purpose (not the intake).

It answers ``POST /dicomweb/studies`` following a script of actions, one per request:
``ok`` (a Store Instances Response naming every received SOP Instance UID), ``500``,
``drop`` (read part of the body, then close the socket without an answer), ``401``,
``reject-first`` (HTTP 202 with the first instance in FailedSOPSequence). After the
script runs out every request gets ``ok``.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydicom import dcmread


@dataclass
class Script:
    actions: list[str]
    requests: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str:
        with self.lock:
            action = self.actions.pop(0) if self.actions else "ok"
            self.requests.append(action)
            return action


def split_parts(body: bytes, content_type: str) -> list[bytes]:
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    parts = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, data = chunk.partition(b"\r\n\r\n")
        parts.append(data.removesuffix(b"\r\n"))
    return parts


def handler_for(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            action = script.next()
            length = int(self.headers["Content-Length"])
            if action == "drop":
                self.rfile.read(length // 2)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                self.close_connection = True
                return
            body = self.rfile.read(length)
            if action in ("500", "401"):
                self.answer(int(action), {"error": "scripted", "message": f"scripted {action}"})
                return
            uids = [
                str(dcmread(io.BytesIO(p), stop_before_pixels=True).SOPInstanceUID)
                for p in split_parts(body, self.headers["Content-Type"])
            ]
            failed = uids[:1] if action == "reject-first" else []
            script.received.extend(u for u in uids if u not in failed)
            answer: dict[str, object] = {
                "00081199": {
                    "vr": "SQ",
                    "Value": [
                        {"00081155": {"vr": "UI", "Value": [u]}} for u in uids if u not in failed
                    ],
                }
            }
            if failed:
                answer["00081198"] = {
                    "vr": "SQ",
                    "Value": [
                        {
                            "00081155": {"vr": "UI", "Value": [u]},
                            "00081197": {"vr": "US", "Value": [49442]},
                        }
                        for u in failed
                    ],
                }
            self.answer(202 if failed else 200, answer)

        def answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def misbehaving_server(context: ssl.SSLContext, script: Script) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(script))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
