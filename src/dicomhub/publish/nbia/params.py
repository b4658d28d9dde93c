"""NBIA's query parameters: strict names (400 for an unknown one), checked values.

Each v4 resource declares the parameters it allows; anything else is refused
with NBIA's own words (``Invalid query parameter``), which is what its clients
already handle.  Values go through the public side's validators, so a UID is
dotted digits, a name printable and short, and nothing reaches SQL unbound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dicomhub.errors import BadRequest, PayloadTooLarge
from dicomhub.publish.filters import check_name, check_uid

#: Parameters holding UIDs (checked as such); every other one is a name.
UID_PARAMS = frozenset({"SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID", "SeriesUID"})
#: The most UIDs one ``getSeriesMetadata`` call may list (tcia_utils sends 10,000).
MAX_LIST = 50_000
_LIST_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Params:
    """The checked parameters of one call (empty values count as absent)."""

    values: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise BadRequest(f"A parameter {name} is required.")
        return value


def read_params(
    items: Iterable[tuple[str, str]],
    allowed: Sequence[str],
    *,
    required: Sequence[str] = (),
) -> Params:
    """Check ``items`` against ``allowed`` (``format`` is always allowed).

    Raises
    ------
    BadRequest
        An unknown parameter, a malformed value, or a required one missing.
    """
    names = [*allowed, "format"]
    values: dict[str, str] = {}
    for name, raw in items:
        if name not in names:
            raise BadRequest(
                f"Invalid query parameter: {name[:40]!r}. Allowed parameters are: "
                f"[{', '.join(names)}]"
            )
        value = raw.strip()
        if not value:
            continue
        if name in UID_PARAMS:
            value = check_uid(value, name)
        elif name != "format":
            value = check_name(value, name)
        values[name] = value
    params = Params(values)
    for name in required:
        params.require(name)
    return params


def uid_list(values: Iterable[str], what: str = "SeriesInstanceUID") -> list[str]:
    """UIDs from comma-separated (or repeated) form values, checked and de-duplicated."""
    found: list[str] = []
    for value in values:
        found.extend(part for part in _LIST_SPLIT.split(value) if part)
        if len(found) > MAX_LIST:
            raise PayloadTooLarge(f"at most {MAX_LIST} UIDs per request; split the list")
    unique = list(dict.fromkeys(check_uid(uid, what) for uid in found))
    if not unique:
        raise BadRequest(f"A parameter list of {what} values is required.")
    return unique
