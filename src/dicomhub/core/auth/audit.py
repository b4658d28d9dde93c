"""The audit trail: one helper every service calls to record who did what.

Events are written in the caller's unit of work, so an operation and its audit
record commit (or roll back) together.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from dicomhub.core.auth.principal import Principal
from dicomhub.core.db import AuditEvent

LOGGER = logging.getLogger(__name__)

_MAX = {"actor": 128, "action": 64, "target_type": 64, "target": 256, "origin": 256}


def audit(
    session: Session,
    actor: Principal | str,
    action: str,
    target_type: str = "",
    target: str | int = "",
    origin: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an :class:`~dicomhub.core.db.AuditEvent` to ``session`` and return it.

    Parameters
    ----------
    session:
        The caller's session; the event commits with the operation it records.
    actor:
        Who acted: a :class:`Principal` (its username, and token id if any) or a name.
    action:
        A dotted verb, e.g. ``user.create`` or ``token.revoke``.
    target_type, target:
        What was acted on (``user``, ``alice``).
    origin:
        Where the request came from (``cli``, an IP address, an AE title).
    detail:
        JSON-serialisable context; never a secret.
    """
    detail = dict(detail or {})
    if isinstance(actor, Principal):
        if actor.token is not None:
            detail.setdefault("token_id", actor.token.token_id)
        actor = actor.username
    values = {
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target": str(target),
        "origin": origin,
    }
    clipped = {key: value[: _MAX[key]] for key, value in values.items()}
    event = AuditEvent(detail=detail, **clipped)
    session.add(event)
    LOGGER.debug("audit %s %s %s:%s from %s", actor, action, target_type, target, origin)
    return event
