"""Small pieces shared by the command groups."""

from __future__ import annotations

import enum

from dicomhub.settings import Settings


class Side(enum.StrEnum):
    """Which side of the wall a command works on."""

    INTAKE = "intake"
    PUBLIC = "public"
    BOTH = "both"


def side_urls(settings: Settings, side: Side) -> list[tuple[str, str]]:
    """The (name, database URL) pairs a command over ``side`` touches."""
    pairs = []
    if side in (Side.INTAKE, Side.BOTH):
        pairs.append(("intake", settings.intake_db))
    if side in (Side.PUBLIC, Side.BOTH):
        pairs.append(("public", settings.public_db))
    return pairs
