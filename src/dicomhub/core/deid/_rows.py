"""Row types of the generated tables (kept apart so the generated modules stay data only)."""

from __future__ import annotations

from typing import NamedTuple


class AnnexRow(NamedTuple):
    """One row of PS3.15 Table E.1-1.

    ``tag`` is the standard's text, e.g. ``"(0008,0050)"``, ``"(50XX,XXXX)"`` or the
    private-attributes row; ``options`` pairs an option column with its code (K or C).
    """

    tag: str
    name: str
    std_comp_iod: bool
    basic: str
    options: tuple[tuple[str, str], ...]


class PrivateRow(NamedTuple):
    """One private attribute: matched by (group, creator, block-relative element)."""

    group: int
    creator: str
    element: int
    vr: str
    vm: str
    meaning: str
    disposition: str  # keep | hash_uid | shift_date
    in_e3101: bool
