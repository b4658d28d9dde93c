"""The intake DIMSE listener (pynetdicom), a thin adapter over the intake service.

Handlers return DIMSE status codes instead of raising, so the protocol edge
decides what the peer sees.  pynetdicom never sets TCP_NODELAY, and without it
every C-STORE response waits on Nagle's algorithm (~40-60 ms), so the listener
sets it on each accepted connection.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomhub.context import IntakeContext

LOGGER = logging.getLogger(__name__)


def _nodelay(event: Any) -> None:
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _echo(event: Any) -> int:
    return 0x0000


class DimseListener:
    """Owns the AE and its server thread for one intake context."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context
        settings = context.settings
        self.address = (settings.dimse_host, settings.dimse_port)
        self.ae = AE(ae_title=settings.dimse_ae_title)
        self.ae.add_supported_context(Verification)
        self._server: Any = None
        self._stopped = threading.Event()

    def handlers(self) -> list[Any]:
        return [(evt.EVT_CONN_OPEN, _nodelay), (evt.EVT_C_ECHO, _echo)]

    def start(self) -> None:
        """Start listening in background threads."""
        self._server = self.ae.start_server(self.address, block=False, evt_handlers=self.handlers())
        LOGGER.info("DIMSE listener %s on %s:%s", self.ae.ae_title, *self.address)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self._server.server_address[1]) if self._server else self.address[1]

    def wait(self) -> None:
        """Block until stopped."""
        self._stopped.wait()

    def stop(self) -> None:
        """Stop listening and close the context."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._stopped.set()
        self.context.close()
