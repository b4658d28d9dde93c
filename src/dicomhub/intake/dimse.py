"""The intake DIMSE listener (pynetdicom), a thin adapter over the intake service.

Handlers return DIMSE status codes instead of raising, so the protocol edge
decides what the peer sees.  Only calling AE titles registered as
:class:`~dicomhub.core.db.intake.DimsePeer` may associate; the title maps to
the collection and site its instances belong to.  pynetdicom never sets
TCP_NODELAY, and without it every C-STORE response waits on Nagle's algorithm
(~40-60 ms), so the listener sets it on each accepted connection.

C-STORE goes through the write-ahead journal (:mod:`dicomhub.intake.journaled`):
checked and made durable before the answer, recorded in batches behind it.
An association's release is answered only once all its instances are
recorded, so a sender that has released sees them in every search.  Where
the journal cannot work (no extended attributes on its filesystem) each
instance is recorded before its answer instead.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from dicomhub.context import IntakeContext
from dicomhub.core.db.intake import DimsePeer
from dicomhub.intake.journal import Unsupported
from dicomhub.intake.journaled import JournaledIntake, journal_root
from dicomhub.intake.origin import Origin
from dicomhub.intake.part10 import file_head
from dicomhub.intake.service import IntakeService, IntakeSession

LOGGER = logging.getLogger(__name__)
#: A title no peer can send (it has a backslash): "nobody is registered" must not mean "anyone".
_NOBODY = "\\none\\"


def _tune(event: Any) -> None:
    """Per-association adjustments of pynetdicom 3.0.4 for a stream of large C-STOREs.

    - TCP_NODELAY: pynetdicom never sets it, and each answer would wait on Nagle.
    - ``AssociationSocket.recv`` reads a PDU 4096 bytes per ``recv`` call into a
      growing bytearray; storescu sends 128 KiB PDUs (the listener asks for no
      limit), so every instance cost hundreds of calls.  :func:`_receiver` reads
      the same bytes, with the same results on a closed or failing socket, in
      as few calls as the kernel allows.
    """
    transport = getattr(event.assoc.dul, "socket", None)
    sock = getattr(transport, "socket", None)
    if transport is None or sock is None:
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport.recv = _receiver(transport)


def _receiver(transport: Any) -> Callable[[int], bytearray]:
    """``AssociationSocket.recv`` with ``recv_into`` one preallocated buffer.

    Like the original it blocks until ``nr_bytes`` arrived, returns what came
    before the peer closed the connection, and lets socket errors through
    (the DUL turns them into its "connection closed" event).
    """

    def recv(nr_bytes: int) -> bytearray:
        buffer = bytearray(nr_bytes)
        got = 0
        with memoryview(buffer) as view:
            while got < nr_bytes:
                count = transport.socket.recv_into(view[got:], nr_bytes - got)
                if not count:
                    break
                got += count
        del buffer[got:]
        return buffer

    return recv


def _echo(event: Any) -> int:
    return 0x0000


def registered_peers(context: IntakeContext) -> dict[str, tuple[str, str]]:
    """Calling AE title -> (collection, site), read fresh for each association."""
    with context.db.sessions() as db:
        rows = db.execute(select(DimsePeer.ae_title, DimsePeer.collection, DimsePeer.site))
        return {row[0].strip(): (row[1], row[2]) for row in rows}


class _IntakeAE(AE):
    """An AE whose allowed calling titles come from the intake database at each association."""

    def __init__(self, ae_title: str, context: IntakeContext) -> None:
        super().__init__(ae_title=ae_title)
        self._context = context

    @property
    def require_calling_aet(self) -> list[str]:
        return list(registered_peers(self._context)) or [_NOBODY]

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        raise AttributeError("calling AE titles are registered in the intake database")


class DimseListener:
    """Owns the AE and its server thread for one intake context."""

    def __init__(self, context: IntakeContext, service: IntakeService | None = None) -> None:
        self.context = context
        self.service = service or IntakeService(context)
        settings = context.settings
        self.address = (settings.dimse_host, settings.dimse_port)
        self.ae = _IntakeAE(settings.dimse_ae_title, context)
        self.ae.add_supported_context(Verification)
        for presentation in AllStoragePresentationContexts:
            self.ae.add_supported_context(str(presentation.abstract_syntax), ALL_TRANSFER_SYNTAXES)
        self.ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
        self._server: Any = None
        self._stopped = threading.Event()
        self._sessions: dict[int, IntakeSession] = {}
        self._lock = threading.Lock()
        self.journaled: JournaledIntake | None = None

    def handlers(self) -> list[Any]:
        return [
            (evt.EVT_CONN_OPEN, _tune),
            (evt.EVT_C_ECHO, _echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACSE_RECV, self._on_acse),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]

    def _session(self, assoc: Any) -> IntakeSession:
        key = id(assoc)
        with self._lock:
            session = self._sessions.get(key)
        if session is not None:
            return session
        title = str(assoc.requestor.ae_title).strip()
        collection, site = registered_peers(self.context).get(title, ("", ""))
        origin = Origin(
            "dimse", title, str(assoc.requestor.address), collection or None, site or None
        )
        session = self.service.open_session(origin)
        with self._lock:
            self._sessions[key] = session
        return session

    def _on_close(self, event: Any) -> None:
        with self._lock:
            session = self._sessions.pop(id(event.assoc), None)
        if session is not None and self.journaled is not None:
            self.journaled.forget(session)
        if session is not None:
            LOGGER.info(
                "%s: %d stored, %d quarantined, %d refused",
                session.origin.label, session.stored, session.quarantined, session.refused,
            )  # fmt: skip

    def _on_acse(self, event: Any) -> None:
        """Before a release is answered, wait until the association's instances are recorded."""
        primitive = event.primitive
        if self.journaled is None or not isinstance(primitive, A_RELEASE):
            return
        if primitive.result is not None or not event.assoc.is_acceptor:
            return
        with self._lock:
            session = self._sessions.get(id(event.assoc))
        if session is not None:
            self.journaled.wait_for(session)

    def _on_store(self, event: Any) -> int:
        try:
            session = self._session(event.assoc)
            if session.origin.collection is None:
                return 0x0124  # the peer was unregistered after associating
            if self.journaled is None:
                result = self.service.store(session, event.encoded_dataset(include_meta=True))
            else:
                result = self.journaled.store(session, _part10(event))
        except Exception:  # a handler answers, it never raises into pynetdicom
            LOGGER.exception("C-STORE failed")
            return 0xA700
        return result.acknowledged_status

    def start(self) -> None:
        """Replay what a killed listener left in the journal, then listen in background threads."""
        try:
            self.journaled = JournaledIntake(self.service, journal_root(self.service))
        except Unsupported as exc:
            LOGGER.warning("C-STORE without the journal (one commit per instance): %s", exc)
        self._server = self.ae.start_server(self.address, block=False, evt_handlers=self.handlers())
        LOGGER.info("DIMSE listener %s on %s:%s", self.ae.ae_title, *self.address)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self._server.server_address[1]) if self._server else self.address[1]

    def wait(self) -> None:
        """Block until stopped."""
        self._stopped.wait()

    def shutdown(self) -> None:
        """Stop listening and record what the journal still holds; the context stays open."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self.journaled is not None:
            self.journaled.close()
            self.journaled = None

    def stop(self) -> None:
        """Stop listening, record what is pending and close the context."""
        self.shutdown()
        self._stopped.set()
        self.context.close()


def _part10(event: Any) -> list[bytes | memoryview]:
    """The instance as a Part 10 file, in pieces: no copy of the dataset's bytes.

    ``event.request.DataSet`` is the BytesIO pynetdicom assembled from the
    P-DATA fragments; :meth:`Event.encoded_dataset` would join it with the
    file meta (built through pydicom) into one more copy of every instance.
    """
    request = event.request
    head = file_head(
        str(request.AffectedSOPClassUID),
        str(request.AffectedSOPInstanceUID),
        str(event.context.transfer_syntax),
    )
    return [head, request.DataSet.getbuffer()]
