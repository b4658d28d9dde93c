"""Typed search filters and paging, parsed once from untrusted query parameters.

Every public route (JSON API, pages, and later the NBIA and DICOMweb routes)
builds a :class:`SeriesFilter` and a :class:`Page` here, so the rules for what a
well-formed value is live in one place: UIDs are dotted digits of at most 64
characters, names at most 128 printable characters, dates ISO ``YYYY-MM-DD``
(or DICOM ``YYYYMMDD``).  Anything else is a 400 that says which parameter and
why.  Values only ever reach SQL as bound parameters; a SQL-ish or
path-traversal string that is well-formed as a name simply matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date

from dicomhub.errors import BadRequest

#: The largest page a caller may ask for, and the page size when they do not say.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
#: Offsets past this are refused (they could only be a mistake or a probe).
MAX_OFFSET = 10_000_000
#: How many values one list parameter may carry in a query string.
MAX_VALUES = 1000

UID_RE = re.compile(r"[0-9]+(\.[0-9]+)*")
_DATE_RE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_MAX_NAME = 128
_MAX_TEXT = 256


def check_uid(value: str, what: str = "UID") -> str:
    """``value`` if it is a DICOM UID (dotted digits, at most 64 characters), else 400."""
    value = value.strip()
    if not (0 < len(value) <= 64 and UID_RE.fullmatch(value)):
        raise BadRequest(f"malformed {what} {value[:80]!r}: expected dotted digits, at most 64")
    return value


def check_name(value: str, what: str, limit: int = _MAX_NAME) -> str:
    """``value`` if it is a printable name of at most ``limit`` characters, else 400."""
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"{what} is longer than {limit} characters")
    if not value.isprintable():
        raise BadRequest(f"{what} contains control characters")
    return value


def parse_date(value: str, what: str) -> date:
    """An ISO (``YYYY-MM-DD``) or DICOM (``YYYYMMDD``) date, else 400."""
    match = _DATE_RE.fullmatch(value.strip())
    if match is None:
        raise BadRequest(f"{what} must be a date YYYY-MM-DD, got {value[:40]!r}")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise BadRequest(f"{what} is not a real date: {value[:40]!r}") from None


@dataclass(frozen=True)
class SeriesFilter:
    """What a series search asks for; empty fields do not filter.

    List fields match any of their values (OR); different fields must all
    match (AND).  ``description`` is a case-insensitive substring of the
    series description.
    """

    collections: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    manufacturers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    patient_ids: tuple[str, ...] = ()
    sop_classes: tuple[str, ...] = ()
    study_uids: tuple[str, ...] = ()
    series_uids: tuple[str, ...] = ()
    study_date_from: date | None = None
    study_date_to: date | None = None
    description: str = ""

    def without(self, name: str) -> SeriesFilter:
        """This filter with field ``name`` cleared (for disjunctive facet counts)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values[name] = () if isinstance(values[name], tuple) else None
        if name == "description":
            values[name] = ""
        return SeriesFilter(**values)

    def to_params(self) -> list[tuple[str, str]]:
        """The query parameters that parse back into this filter (for links and forms)."""
        out: list[tuple[str, str]] = []
        for param, attr in PARAMS.items():
            value = getattr(self, attr)
            if isinstance(value, tuple):
                out.extend((param, v) for v in value)
            elif isinstance(value, date):
                out.append((param, value.isoformat()))
            elif value:
                out.append((param, str(value)))
        return out

    @property
    def is_empty(self) -> bool:
        return not self.to_params()


#: Query parameter name → :class:`SeriesFilter` field.
PARAMS: Mapping[str, str] = {
    "collection": "collections",
    "modality": "modalities",
    "body_part": "body_parts",
    "manufacturer": "manufacturers",
    "model": "models",
    "patient_id": "patient_ids",
    "sop_class": "sop_classes",
    "study_uid": "study_uids",
    "series_uid": "series_uids",
    "study_date_from": "study_date_from",
    "study_date_to": "study_date_to",
    "description": "description",
}
_UID_PARAMS = frozenset({"sop_class", "study_uid", "series_uid"})
_SINGLE = frozenset({"study_date_from", "study_date_to", "description"})


@dataclass(frozen=True)
class Page:
    """A window on an ordered result: ``limit`` rows from ``offset``."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def of(cls, limit: str | int | None, offset: str | int | None) -> Page:
        """Parse and check ``limit`` (1..MAX_LIMIT) and ``offset`` (0..MAX_OFFSET), else 400."""
        lim = _int(limit, "limit", DEFAULT_LIMIT)
        off = _int(offset, "offset", 0)
        if not 1 <= lim <= MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {lim}")
        if not 0 <= off <= MAX_OFFSET:
            raise BadRequest(f"offset must be between 0 and {MAX_OFFSET}, got {off}")
        return cls(lim, off)


def _int(value: str | int | None, what: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text):
        raise BadRequest(f"{what} must be an integer, got {value[:40]!r}")
    return int(text)


@dataclass
class ParsedQuery:
    """A filter, a page, and the other (route-specific) parameters that were allowed."""

    filter: SeriesFilter
    page: Page
    extra: dict[str, str] = field(default_factory=dict)


def parse_query(
    items: Iterable[tuple[str, str]], *, extra: Iterable[str] = (), strict: bool = True
) -> ParsedQuery:
    """Build a :class:`ParsedQuery` from query (or form) parameters.

    Parameters
    ----------
    items:
        ``(name, value)`` pairs as sent; list parameters may repeat.
    extra:
        Further parameter names the route understands (returned in ``extra``).
    strict:
        Refuse unknown parameter names (the JSON API); pages pass False.

    Raises
    ------
    BadRequest
        An unknown parameter (when strict), a malformed value, too many
        values, a date range that ends before it starts, or a bad page.
    """
    lists: dict[str, list[str]] = {}
    singles: dict[str, str] = {}
    allowed_extra = set(extra) | {"limit", "offset"}
    for name, raw in items:
        if name in PARAMS:
            value = raw.strip()
            if not value:
                continue
            if name in _SINGLE:
                singles[name] = value
            else:
                lists.setdefault(name, []).append(value)
        elif name in allowed_extra:
            singles[name] = raw
        elif strict:
            known = ", ".join(sorted([*PARAMS, *allowed_extra]))
            raise BadRequest(f"unknown parameter {name[:40]!r}; known: {known}")
    return ParsedQuery(
        _build_filter(lists, singles),
        Page.of(singles.get("limit"), singles.get("offset")),
        {k: v for k, v in singles.items() if k in allowed_extra and k not in ("limit", "offset")},
    )


def _build_filter(lists: dict[str, list[str]], singles: dict[str, str]) -> SeriesFilter:
    values: dict[str, object] = {}
    for name, raw_values in lists.items():
        if len(raw_values) > MAX_VALUES:
            raise BadRequest(f"at most {MAX_VALUES} values of {name}")
        if name in _UID_PARAMS:
            checked = [check_uid(v, name) for v in raw_values]
        else:
            checked = [check_name(v, name) for v in raw_values]
        values[PARAMS[name]] = tuple(dict.fromkeys(checked))
    for name in ("study_date_from", "study_date_to"):
        if name in singles:
            values[PARAMS[name]] = parse_date(singles[name], name)
    if "description" in singles:
        values["description"] = check_name(singles["description"], "description", _MAX_TEXT)
    built = SeriesFilter(**values)  # type: ignore[arg-type]
    start, end = built.study_date_from, built.study_date_to
    if start is not None and end is not None and end < start:
        raise BadRequest("study_date_to is before study_date_from")
    return built
