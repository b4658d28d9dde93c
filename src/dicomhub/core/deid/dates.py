"""Whole-day date shifting for DA and DT values.

A whole-day shift leaves the clock time and the UTC offset of a DT exactly as they were
(CTP's ``@incrementdate`` empties or corrupts DT values with an offset; see deid.md §6.3).
Values that cannot be shifted exactly (invalid, partial precision) raise
:class:`BadDate`; the engine then removes the attribute and reports it, never leaves it.
"""

from __future__ import annotations

import datetime as dt
import re

DT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{0,6}(?:\.\d{1,6})?)([+-]\d{4})?$")
DA_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


class BadDate(ValueError):
    """A DA/DT value that cannot be shifted by whole days."""


def _shift(year: str, month: str, day: str, days: int) -> str:
    try:
        moved = dt.date(int(year), int(month), int(day)) + dt.timedelta(days=days)
    except (ValueError, OverflowError) as exc:
        raise BadDate(f"{year}{month}{day}") from exc
    if moved.year < 1:
        raise BadDate(f"{year}{month}{day}")
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def shift_da(value: str, days: int) -> str:
    """Shift one DA value (``YYYYMMDD``) by ``days``."""
    match = DA_RE.match(value.strip())
    if match is None:
        raise BadDate(value)
    year, month, day = match.groups()
    return _shift(year, month, day, days)


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of one DT value, keeping time, fraction and UTC offset verbatim.

    DT values coarser than a day (``YYYY``, ``YYYYMM``) cannot be shifted by whole days
    without inventing precision, so they are refused.
    """
    match = DT_RE.match(value.strip())
    if match is None:
        raise BadDate(value)
    year, month, day, rest, offset = match.groups()
    clock = rest.split(".", 1)[0]
    if len(clock) % 2 or (rest.startswith(".")) or ("." in rest and len(clock) != 6):
        raise BadDate(value)
    return _shift(year, month, day, days) + rest + (offset or "")


def shift_values(value: str, days: int, *, datetime: bool) -> str:
    """Shift every value of a (possibly multi-valued, backslash-separated) DA or DT string."""
    shift = shift_dt if datetime else shift_da
    return "\\".join(shift(part, days) for part in value.split("\\"))
