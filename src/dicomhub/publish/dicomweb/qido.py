"""QIDO-RS (PS3.18 §10.6): studies, series and instances, searched in SQL for one caller.

Every search applies the caller's :class:`Visibility` to each series (see
:func:`visible`), so a limited collection the caller may not see contributes
no study, series or instance.  Matching follows PS3.4 C.2.2.2: single values (exact), ``*`` and
``?`` wildcards on strings, person names compared case-blind, UID lists, and
date ranges (``A-B``, ``-B``, ``A-``).  Keys are keywords or tags
(``PatientID`` or ``00100020``); a known attribute that cannot be matched here
is ignored with a ``Warning`` header, a name that is neither an attribute nor
a QIDO parameter is a 400.  An attribute of a lower level narrows to the
entities holding a match (a study search on Modality: studies with such a series).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar, cast

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Instance, Patient, Series, Study
from dicomhub.core.dicom.index import parse_date
from dicomhub.errors import BadRequest
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import MAX_OFFSET, check_uid

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STUDY, SERIES, INSTANCE = "study", "series", "instance"
_LEVELS = {STUDY: 0, SERIES: 1, INSTANCE: 2}
_PARAMS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_Row = TypeVar("_Row")
#: The warning PS3.18 gives for a search page that is not the last one.
MORE_RESULTS = "There are additional results that can be requested"

#: keyword → (level, column, kind).  Kinds: uid, text, name (PN), date, time, int, modality.
MATCHABLE: dict[str, tuple[str, Any, str]] = {
    "StudyInstanceUID": (STUDY, Study.study_instance_uid, "uid"),
    "StudyDate": (STUDY, Study.study_date, "date"),
    "StudyTime": (STUDY, Study.study_time, "time"),
    "AccessionNumber": (STUDY, Study.accession_number, "text"),
    "StudyID": (STUDY, Study.study_id, "text"),
    "StudyDescription": (STUDY, Study.study_description, "text"),
    "PatientName": (STUDY, Patient.patient_name, "name"),
    "PatientID": (STUDY, Patient.patient_id, "text"),
    "PatientSex": (STUDY, Patient.patient_sex, "text"),
    "ModalitiesInStudy": (STUDY, Series.modality, "modality"),
    "SeriesInstanceUID": (SERIES, Series.series_instance_uid, "uid"),
    "Modality": (SERIES, Series.modality, "text"),
    "SeriesNumber": (SERIES, Series.series_number, "int"),
    "SeriesDescription": (SERIES, Series.series_description, "text"),
    "SeriesDate": (SERIES, Series.series_date, "date"),
    "BodyPartExamined": (SERIES, Series.body_part_examined, "text"),
    "Manufacturer": (SERIES, Series.manufacturer, "text"),
    "ManufacturerModelName": (SERIES, Series.manufacturer_model_name, "text"),
    "SOPInstanceUID": (INSTANCE, Instance.sop_instance_uid, "uid"),
    "SOPClassUID": (INSTANCE, Instance.sop_class_uid, "uid"),
    "InstanceNumber": (INSTANCE, Instance.instance_number, "int"),
}


@dataclass
class Query:
    """A parsed QIDO request."""

    level: str
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    study_conditions: list[ColumnElement[bool]] = field(default_factory=list)
    includes: set[str] = field(default_factory=set)
    include_all: bool = False
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    warnings: list[str] = field(default_factory=list)
    #: Matching on a study, series or instance UID (a small set, worth ordering fully).
    narrow: bool = False

    def page(self, rows: list[_Row]) -> list[_Row]:
        """``rows`` cut to the limit, with PS3.18's warning when more could be asked for.

        The searches fetch one row beyond the limit, so a client learns that
        the page is not the end without a count of every match.
        """
        if len(rows) <= self.limit:
            return rows
        self.warnings.append(MORE_RESULTS)
        return rows[: self.limit]


def keyword_of(name: str) -> str | None:
    """The DICOM keyword a parameter names (keyword or 8-digit tag), else None."""
    if _HEX_TAG.fullmatch(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def tag_of(keyword: str) -> str:
    """``00100020`` for ``PatientID``."""
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return f"{tag:08X}"


def _bool(expression: Any) -> ColumnElement[bool]:
    return cast("ColumnElement[bool]", expression)


def _wildcard(column: Any, value: str, *, fold: bool) -> ColumnElement[bool]:
    if "*" not in value and "?" not in value:
        return _bool(func.upper(column) == value.upper() if fold else column == value)
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%").replace("?", "_")
    if fold:
        return func.upper(column).like(pattern.upper(), escape="\\")
    return _bool(column.like(pattern, escape="\\"))


def _date(value: str, keyword: str) -> date:
    found = parse_date(value)
    if found is None:
        raise BadRequest(f"{keyword} must be a date YYYYMMDD or a range A-B, got {value[:40]!r}")
    return found


def _date_range(column: Any, value: str, keyword: str) -> ColumnElement[bool]:
    if "-" not in value:
        return _bool(column == _date(value, keyword))
    start, _, end = value.partition("-")
    if not start and not end:
        raise BadRequest(f"{keyword}: a range needs at least one end")
    parts = []
    if start:
        parts.append(column >= _date(start, keyword))
    if end:
        parts.append(column <= _date(end, keyword))
    if start and end and _date(end, keyword) < _date(start, keyword):
        raise BadRequest(f"{keyword}: the range ends before it starts")
    return and_(*parts)


_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")


def _time(value: str, keyword: str) -> str:
    whole = value.partition(".")[0]
    fields = [int(whole[i : i + 2]) for i in range(0, len(whole), 2)] if whole.isdigit() else []
    limits = (23, 59, 60)  # 60: a leap second
    if not _TIME.fullmatch(value) or any(f > m for f, m in zip(fields, limits, strict=False)):
        raise BadRequest(f"{keyword} must be a time HHMMSS or a range A-B, got {value[:40]!r}")
    return value


def _time_range(column: Any, value: str, keyword: str) -> ColumnElement[bool]:
    """TM matching on the stored text: single values exactly, ranges by string order.

    TM text sorts as time does; the end of a range is widened to the last
    instant its precision names (``-1230`` takes 12:30:59.999999).
    """
    if "-" not in value:
        return _bool(column == _time(value, keyword))
    start, _, end = value.partition("-")
    if not start and not end:
        raise BadRequest(f"{keyword}: a range needs at least one end")
    parts = [column != ""]
    if start:
        parts.append(column >= _time(start, keyword))
    if end:
        whole, _, fraction = _time(end, keyword).partition(".")
        parts.append(column <= whole.ljust(6, "9") + "." + fraction.ljust(6, "9"))
    if start and end and end.ljust(6, "9") < start:
        raise BadRequest(f"{keyword}: the range ends before it starts")
    return and_(*parts)


def _condition(keyword: str, value: str) -> ColumnElement[bool]:
    _level, column, kind = MATCHABLE[keyword]
    if len(value) > 1024:
        raise BadRequest(f"{keyword} is longer than 1024 characters")
    if kind == "uid":
        uids = [check_uid(v, keyword) for v in re.split(r"[,\\]", value) if v.strip()]
        if len(uids) > MAX_LIMIT:
            raise BadRequest(f"at most {MAX_LIMIT} UIDs in {keyword}")
        return _bool(column.in_(uids))
    if kind == "date":
        return _date_range(column, value, keyword)
    if kind == "time":
        return _time_range(column, value.strip(), keyword)
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d{1,9}", value.strip()):
            raise BadRequest(f"{keyword} must be an integer, got {value[:40]!r}")
        return _bool(column == int(value))
    if kind == "modality":
        values = [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]
        visible = select(Series.study_id).where(Series.modality.in_(values))
        return Study.id.in_(visible)
    if not value.isprintable():
        raise BadRequest(f"{keyword} contains control characters")
    return _wildcard(column, value, fold=kind == "name")


def _integer(value: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,12}", value.strip()):
        raise BadRequest(f"{what} must be a non-negative integer, got {value[:40]!r}")
    return int(value)


def parse(items: Iterable[tuple[str, str]], level: str) -> Query:
    """Check and translate the query parameters of a search at ``level``.

    An attribute given more than once matches any of its values, as a
    comma-separated list does: dicomweb-client sends a Python list of values
    (``{"ModalitiesInStudy": ["CT", "MR"]}``) as repeated parameters.
    """
    query = Query(level)
    values: dict[str, list[str]] = {}
    for name, raw in items:
        value = raw.strip()
        if name in _PARAMS:
            _parameter(query, name, value)
            continue
        keyword = keyword_of(name)
        if keyword is None:
            raise BadRequest(f"unknown QIDO-RS parameter or attribute {name[:40]!r}")
        if value:  # an empty value is universal matching
            values.setdefault(keyword, []).append(value)
    for keyword, given in values.items():
        spec = MATCHABLE.get(keyword)
        if spec is None:
            query.warnings.append(f"matching on {keyword} is not supported here; ignored")
            continue
        target = query.study_conditions if keyword == "ModalitiesInStudy" else query.conditions
        if spec[2] == "uid" and keyword != "SOPClassUID":
            query.narrow = True
        conditions = [_condition(keyword, value) for value in given]
        condition = conditions[0] if len(conditions) == 1 else or_(*conditions)
        target.append(_holding(spec[0], level, condition))
    return query


def _holding(attribute_level: str, level: str, condition: ColumnElement[bool]) -> Any:
    """``condition`` on an attribute below the searched level: the entities holding a match.

    A study search on Modality finds the studies with a series of that
    modality, as ModalitiesInStudy does; a series search on SOPClassUID the
    series with such an instance.  A study and its series share one
    collection, so this reveals nothing the caller may not see.
    """
    if _LEVELS[attribute_level] <= _LEVELS[level]:
        return condition
    if level == SERIES:
        return Series.id.in_(select(Instance.series_id).where(condition))
    holders = select(Series.study_id)
    if attribute_level == INSTANCE:
        holders = holders.join(Instance, Instance.series_id == Series.id)
    return Study.id.in_(holders.where(condition))


def _parameter(query: Query, name: str, value: str) -> None:
    if name == "limit":
        limit = _integer(value, "limit")
        if limit == 0:
            raise BadRequest("limit must be at least 1")
        if limit > MAX_LIMIT:
            query.warnings.append(
                f"limit {limit} is above this server's maximum; at most {MAX_LIMIT} results "
                "are returned, ask for more with offset"
            )
        query.limit = min(limit, MAX_LIMIT)
    elif name == "offset":
        query.offset = _integer(value, "offset")
        if query.offset > MAX_OFFSET:
            raise BadRequest(f"offset must be at most {MAX_OFFSET}")
    elif name == "fuzzymatching":
        if value.lower() not in ("true", "false", ""):
            raise BadRequest("fuzzymatching must be true or false")
        if value.lower() == "true":
            query.warnings.append("fuzzy matching is not supported; exact matching was used")
    else:
        for part in value.split(","):
            part = part.strip()
            if part.lower() == "all":
                query.include_all = True
            elif part:
                keyword = keyword_of(part)
                if keyword is None:
                    raise BadRequest(f"includefield: unknown attribute {part[:40]!r}")
                query.includes.add(keyword)


def hidden_collection_ids(seen: Visibility) -> Select[Any]:
    """Ids of the collections the caller may not see (a sub-select, evaluated in-statement)."""
    return select(Collection.id).where(not_(seen.collection_clause()))


def visible(seen: Visibility) -> ColumnElement[bool]:
    """The access check on :class:`Series` rows, the same rule as the query layer's.

    Written as ``collection_id NOT IN (hidden collections)`` rather than ``IN
    (visible ones)``: the hidden list is short or empty, so the planner filters
    with it instead of walking every visible series through the collection
    index, and a search with a limit stops after its page (in primary-key
    order) instead of sorting every match.  The sub-select runs inside the
    search's own statement, so a collection created meanwhile cannot slip in.
    """
    return Series.collection_id.not_in(hidden_collection_ids(seen))


def studies(session: Session, seen: Visibility, query: Query) -> list[Any]:
    """One page (plus one row) of matching studies (Study, Patient) with a visible series."""
    has_visible = select(Series.id).where(Series.study_id == Study.id, visible(seen)).exists()
    stmt = (
        select(Study, Patient)
        .join(Patient, Patient.id == Study.patient_id)
        .where(has_visible, *query.conditions, *query.study_conditions)
        .order_by(Study.id)
        .limit(query.limit + 1)
        .offset(query.offset)
    )
    return list(session.execute(stmt))


@dataclass(frozen=True, slots=True)
class SeriesHit:
    """The series columns a series result shows (in :data:`_SERIES_COLUMNS` order)."""

    series_date: date | None
    modality: str
    manufacturer: str
    series_description: str
    manufacturer_model_name: str
    body_part_examined: str
    series_instance_uid: str
    series_number: int | None
    instance_count: int


@dataclass(frozen=True, slots=True)
class StudyHit:
    """The study columns a series result may show."""

    study_date: date | None
    study_time: str
    accession_number: str
    study_description: str
    patient_age: str
    study_instance_uid: str
    study_id: str


@dataclass(frozen=True, slots=True)
class PatientHit:
    """The patient columns a series result may show."""

    patient_name: str
    patient_id: str
    patient_sex: str
    patient_age: str


_SERIES_COLUMNS: tuple[Any, ...] = (
    Series.series_date,
    Series.modality,
    Series.manufacturer,
    Series.series_description,
    Series.manufacturer_model_name,
    Series.body_part_examined,
    Series.series_instance_uid,
    Series.series_number,
    Series.instance_count,
    Study.study_date,
    Study.study_time,
    Study.accession_number,
    Study.study_description,
    Study.patient_age,
    Study.study_instance_uid,
    Study.study_id,
    Patient.patient_name,
    Patient.patient_id,
    Patient.patient_sex,
    Patient.patient_age,
)


def series(
    session: Session, seen: Visibility, query: Query
) -> list[tuple[SeriesHit, StudyHit, PatientHit]]:
    """One page (plus one row) of matching visible series, in series order.

    Plain columns rather than ORM entities: a page is a hundred rows that are
    only read once, and loading three mapped objects per row cost more than
    the search itself.
    """
    stmt = (
        select(*_SERIES_COLUMNS)
        .select_from(Series)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .where(visible(seen), *query.conditions, *query.study_conditions)
        .order_by(Series.id)
        .limit(query.limit + 1)
        .offset(query.offset)
    )
    out = []
    for row in session.execute(stmt):
        values = tuple(row)
        out.append((SeriesHit(*values[:9]), StudyHit(*values[9:16]), PatientHit(*values[16:])))
    return out


def instances(session: Session, seen: Visibility, query: Query) -> list[Any]:
    """One page (plus one row) of matching instances of visible series (Instance, Series, ...).

    Within a study or series, instances come in InstanceNumber order; a search
    across the archive pages in row order, which needs no sort of every match.
    """
    order: tuple[Any, ...] = (Instance.id,)
    if query.narrow:
        order = (Series.id, Instance.instance_number.asc().nulls_last(), Instance.id)
    stmt = (
        select(Instance, Series, Study, Patient)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .join(Patient, Patient.id == Study.patient_id)
        .where(visible(seen), *query.conditions, *query.study_conditions)
        .order_by(*order)
        .limit(query.limit + 1)
        .offset(query.offset)
    )
    return list(session.execute(stmt))


def study_counts(
    session: Session, seen: Visibility, study_ids: Sequence[int]
) -> dict[int, tuple[int, int, list[str]]]:
    """Per study: visible series, their instances, and their modalities."""
    if not study_ids:
        return {}
    rows = session.execute(
        select(Series.study_id, Series.modality, Series.instance_count).where(
            Series.study_id.in_(study_ids), visible(seen)
        )
    )
    out: dict[int, tuple[int, int, list[str]]] = {}
    for study_id, modality, count in rows:
        n_series, n_instances, modalities = out.get(study_id, (0, 0, []))
        if modality and modality not in modalities:
            modalities = sorted([*modalities, modality])
        out[study_id] = (n_series + 1, n_instances + int(count), modalities)
    return out
