"""Ages kept under Retain Patient Characteristics, capped the way HIPAA Safe Harbor asks.

Safe Harbor allows an age only below 90; every older age is aggregated into one
category. An AS value of 90 years or more (in any unit: 1080M, 4700W, 32872D) becomes
``090Y``, so the oldest patients are not singled out; younger ages stay exact.
"""

from __future__ import annotations

import re

AS_RE = re.compile(r"^(\d{3})([DWMY])$")
CAP = "090Y"
#: Days in one unit, and the first value of that unit that is 90 years or more.
_LIMITS = {"Y": 90, "M": 90 * 12, "W": 4696, "D": 32872}


class BadAge(ValueError):
    """An AS value that is not ``nnnD``, ``nnnW``, ``nnnM`` or ``nnnY``."""


def cap_age(value: str) -> str:
    """``value`` unchanged below 90 years, ``090Y`` from 90 on; raise :class:`BadAge`."""
    match = AS_RE.match(value.strip())
    if match is None:
        raise BadAge("not an age string")
    number, unit = match.groups()
    return CAP if int(number) >= _LIMITS[unit] else match.group(0)
