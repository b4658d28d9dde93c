"""The data basket: series a user (or a guest's browser session) means to download.

Every add resolves what was asked for *inside the caller's visibility* and
refuses the whole request (404, naming what was sent) if any part is unknown
or hidden, so a basket can only ever hold series the caller could see when
they added them.  Adding studies, patients or a whole search result is one
``INSERT ... SELECT`` in the database, never a list of UIDs shipped through
the browser or looped over in Python.

If access is later withdrawn, the hidden series stay in the basket but are
neither counted nor listed, and exports refuse to run (403) until they are
removed: an export is never silently partial.

A logged-in user may share their basket under a unique name (NBIA's shared
cart, read back with ``getContentsByName``) and anyone may then read it, each
reader seeing only the series of collections they may see themselves.  A
basket is also reachable by its id (the downloader's manifest route) for its
owner, and for anyone once it is shared.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dicomhub.core.db import Basket, BasketItem, Patient, Series, Study, utcnow
from dicomhub.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import Page, SeriesFilter, check_name, check_uid
from dicomhub.publish.query import (
    joined_series,
    ordered,
    resolve_collections,
    series_row,
    series_scope,
)

LOGGER = logging.getLogger(__name__)

#: The most series one basket may hold.
MAX_BASKET = 100_000
#: The most UIDs (or patient IDs) one add or remove request may list.
MAX_LISTED = 10_000
_CHUNK = 500
#: A shared basket's name: what NBIA cart names look like, safe in a URL and a file name.
SHARE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Owner:
    """Whose basket: a user's (kept across logins) or one guest session's."""

    user_id: int | None = None
    session_key: str | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.session_key is None):
            raise ValueError("a basket owner is a user or a guest session, not both or neither")

    def clause(self) -> ColumnElement[bool]:
        if self.user_id is not None:
            return Basket.user_id == self.user_id
        return Basket.session_key == self.session_key


def find_basket(session: Session, owner: Owner) -> Basket | None:
    """The owner's basket, if they have one."""
    return session.scalar(select(Basket).where(owner.clause()))


def basket_for(session: Session, owner: Owner) -> Basket:
    """The owner's basket, created on first use (safe against a concurrent create)."""
    found = find_basket(session, owner)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            basket = Basket(user_id=owner.user_id, session_key=owner.session_key)
            session.add(basket)
        return basket
    except IntegrityError:
        found = find_basket(session, owner)
        if found is None:
            raise
        return found


def _listed(values: Iterable[str], what: str, *, uids: bool = True) -> list[str]:
    checked = [check_uid(v, what) if uids else check_name(v, what) for v in values]
    unique = list(dict.fromkeys(v for v in checked if v))
    if not unique:
        raise BadRequest(f"give at least one {what}")
    if len(unique) > MAX_LISTED:
        raise PayloadTooLarge(f"at most {MAX_LISTED} values of {what} per request")
    return unique


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _require_found(asked: list[str], found: set[str], what: str) -> None:
    missing = [value for value in asked if value not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise NotFound(f"no {what} {shown}", detail={"missing": missing[:100]})


def _insert_series(session: Session, basket: Basket, series_ids: Select[Any]) -> int:
    """Put the series selected by ``series_ids`` (a one-column select) into ``basket``."""
    chosen = series_ids.subquery()
    already = exists().where(BasketItem.basket_id == basket.id, BasketItem.series_id == chosen.c.id)
    source = select(literal(basket.id, Integer), chosen.c.id).where(~already).distinct()
    before = _held(session, basket.id)
    session.execute(insert(BasketItem).from_select(["basket_id", "series_id"], source))
    size = _held(session, basket.id)
    if size > MAX_BASKET:
        raise PayloadTooLarge(f"a basket holds at most {MAX_BASKET} series; this would make {size}")
    added = size - before
    session.execute(update(Basket).where(Basket.id == basket.id).values(updated_at=utcnow()))
    return added


def _held(session: Session, basket_id: int) -> int:
    """How many series the basket holds, hidden ones included."""
    query = select(func.count()).select_from(BasketItem).where(BasketItem.basket_id == basket_id)
    return int(session.scalar(query) or 0)


def visible_series(visibility: Visibility) -> ColumnElement[bool]:
    """A condition on :class:`Series`: its collection is visible to the caller."""
    return Series.collection_id.in_(visibility.collection_ids())


def add_series(session: Session, visibility: Visibility, owner: Owner, uids: Iterable[str]) -> int:
    """Add series by SeriesInstanceUID; returns how many were new to the basket."""
    asked = _listed(uids, "SeriesInstanceUID")
    found: set[str] = set()
    for chunk in _chunks(asked):
        query = select(Series.series_instance_uid).where(
            Series.series_instance_uid.in_(chunk), visible_series(visibility)
        )
        found.update(session.scalars(query))
    _require_found(asked, found, "series")
    basket = basket_for(session, owner)
    added = 0
    for chunk in _chunks(asked):
        ids = select(Series.id).where(Series.series_instance_uid.in_(chunk))
        added += _insert_series(session, basket, ids)
    return added


def add_studies(session: Session, visibility: Visibility, owner: Owner, uids: Iterable[str]) -> int:
    """Add every visible series of the given studies (StudyInstanceUIDs)."""
    asked = _listed(uids, "StudyInstanceUID")
    found: set[str] = set()
    for chunk in _chunks(asked):
        query = (
            select(Study.study_instance_uid)
            .distinct()
            .join(Series, Series.study_id == Study.id)
            .where(Study.study_instance_uid.in_(chunk), visible_series(visibility))
        )
        found.update(session.scalars(query))
    _require_found(asked, found, "study")
    basket = basket_for(session, owner)
    added = 0
    for chunk in _chunks(asked):
        ids = (
            select(Series.id)
            .join(Study, Study.id == Series.study_id)
            .where(Study.study_instance_uid.in_(chunk), visible_series(visibility))
        )
        added += _insert_series(session, basket, ids)
    return added


def add_patients(
    session: Session,
    visibility: Visibility,
    owner: Owner,
    collection: str,
    patient_ids: Iterable[str],
) -> int:
    """Add every series of the given patients of one (visible) collection."""
    name = check_name(collection, "collection")
    (collection_id,) = resolve_collections(session, visibility, (name,))
    asked = _listed(patient_ids, "PatientID", uids=False)
    found: set[str] = set()
    for chunk in _chunks(asked):
        query = select(Patient.patient_id).where(
            Patient.collection_id == collection_id, Patient.patient_id.in_(chunk)
        )
        found.update(session.scalars(query))
    _require_found(asked, found, f"patient in {name}:")
    basket = basket_for(session, owner)
    added = 0
    for chunk in _chunks(asked):
        ids = (
            select(Series.id)
            .join(Study, Study.id == Series.study_id)
            .join(Patient, Patient.id == Study.patient_id)
            .where(Patient.collection_id == collection_id, Patient.patient_id.in_(chunk))
        )
        added += _insert_series(session, basket, ids)
    return added


def add_search(session: Session, visibility: Visibility, owner: Owner, wanted: SeriesFilter) -> int:
    """Add every series a search matches, server-side, in one statement."""
    scope = series_scope(session, visibility, wanted)
    basket = basket_for(session, owner)
    return _insert_series(session, basket, scope.series_ids())


def remove_series(session: Session, owner: Owner, uids: Iterable[str]) -> int:
    """Take series out of the basket; returns how many were removed."""
    asked = _listed(uids, "SeriesInstanceUID")
    basket = find_basket(session, owner)
    if basket is None:
        return 0
    removed = 0
    for chunk in _chunks(asked):
        ids = select(Series.id).where(Series.series_instance_uid.in_(chunk))
        result = session.connection().execute(
            delete(BasketItem).where(
                BasketItem.basket_id == basket.id, BasketItem.series_id.in_(ids)
            )
        )
        removed += max(int(getattr(result, "rowcount", 0) or 0), 0)
    return removed


def clear(session: Session, owner: Owner) -> None:
    """Empty the basket."""
    basket = find_basket(session, owner)
    if basket is not None:
        session.execute(delete(BasketItem).where(BasketItem.basket_id == basket.id))


def merge_into(session: Session, guest: Owner, user: Owner) -> int:
    """Move a guest session's basket into the user's (at login); returns series moved."""
    source = find_basket(session, guest)
    if source is None:
        return 0
    target = basket_for(session, user)
    moved = _insert_series(
        session,
        target,
        select(BasketItem.series_id.label("id")).where(BasketItem.basket_id == source.id),
    )
    session.delete(source)
    return moved


def in_basket(basket_id: int) -> ColumnElement[bool]:
    """A condition on :class:`Series`: the series is in this basket."""
    return Series.id.in_(select(BasketItem.series_id).where(BasketItem.basket_id == basket_id))


_SUMMARY_KEYS = ("series", "studies", "patients", "collections", "instances", "size")


def summary_of_nothing() -> dict[str, int]:
    """The summary of an empty (or not yet created) basket."""
    return dict.fromkeys((*_SUMMARY_KEYS, "hidden"), 0)


def summary(session: Session, visibility: Visibility, owner: Owner) -> dict[str, int]:
    """Counts and total size of the visible basket, and how many series are now hidden."""
    basket = find_basket(session, owner)
    if basket is None:
        return summary_of_nothing()
    return summary_of(session, visibility, basket)


def summary_of(session: Session, visibility: Visibility, basket: Basket) -> dict[str, int]:
    """:func:`summary` of a basket already at hand."""
    row = session.execute(
        select(
            func.count(Series.id),
            func.count(distinct(Series.study_id)),
            func.count(distinct(Study.patient_id)),
            func.count(distinct(Series.collection_id)),
            func.coalesce(func.sum(Series.instance_count), 0),
            func.coalesce(func.sum(Series.total_size), 0),
        )
        .join(Study, Study.id == Series.study_id)
        .where(in_basket(basket.id), visible_series(visibility))
    ).one()
    held = _held(session, basket.id)
    out = {key: int(value) for key, value in zip(_SUMMARY_KEYS, row, strict=True)}
    out["hidden"] = int(held) - out["series"]
    return out


def items(
    session: Session, visibility: Visibility, owner: Owner, page: Page
) -> list[dict[str, Any]]:
    """One page of the visible series in the basket, in the public side's stable order."""
    basket = find_basket(session, owner)
    if basket is None:
        return []
    query = joined_series().where(in_basket(basket.id), visible_series(visibility))
    rows = session.execute(ordered(session, query).limit(page.limit).offset(page.offset))
    return [series_row(row) for row in rows]


def exportable(session: Session, visibility: Visibility, owner: Owner) -> tuple[int, int]:
    """``(basket id, series count)`` for an export; Forbidden if any series is now hidden.

    Raises
    ------
    NotFound
        The basket is empty (there is nothing to export).
    Forbidden
        Some series in the basket are no longer visible to the caller; the
        export would be partial, so it is refused as a whole.
    """
    basket = find_basket(session, owner)
    if basket is None:
        raise NotFound("the basket is empty")
    return basket.id, exportable_basket(session, visibility, basket)


def exportable_basket(session: Session, visibility: Visibility, basket: Basket) -> int:
    """How many series an export of the owner's ``basket`` holds (see :func:`exportable`)."""
    counts = summary_of(session, visibility, basket)
    if counts["hidden"]:
        raise Forbidden(
            f"{counts['hidden']} series in your basket are no longer visible to you; "
            "remove them (or clear the basket) before exporting"
        )
    if counts["series"] == 0:
        raise NotFound("the basket is empty")
    return counts["series"]


def remove_hidden(session: Session, visibility: Visibility, owner: Owner) -> int:
    """Drop the series the caller can no longer see; returns how many."""
    basket = find_basket(session, owner)
    if basket is None:
        return 0
    visible = select(Series.id).where(visible_series(visibility))
    result = session.connection().execute(
        delete(BasketItem).where(
            BasketItem.basket_id == basket.id, BasketItem.series_id.not_in(visible)
        )
    )
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


# -- sharing and reaching a basket by id --------------------------------------------


def check_share_name(name: str) -> str:
    """``name`` if it can name a shared basket, else 400 saying what is allowed."""
    if not SHARE_NAME_RE.fullmatch(name):
        raise BadRequest(
            f"a shared basket name is 1 to 64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit; got {name[:80]!r}"
        )
    return name


def share(session: Session, owner: Owner, name: str) -> Basket:
    """Share the owner's basket under ``name`` (replacing an earlier name); 409 if taken."""
    if owner.user_id is None:
        raise BadRequest("only a logged-in user's basket can be shared")
    name = check_share_name(name)
    basket = basket_for(session, owner)
    holder = session.scalar(select(Basket.id).where(Basket.shared_name == name))
    if holder is not None and holder != basket.id:
        raise Conflict(f"the name {name!r} is already taken by another shared basket")
    try:
        with session.begin_nested():
            basket.shared_name = name
    except IntegrityError:
        raise Conflict(f"the name {name!r} is already taken by another shared basket") from None
    return basket


def unshare(session: Session, owner: Owner) -> None:
    """Stop sharing the owner's basket (its name becomes free)."""
    basket = find_basket(session, owner)
    if basket is not None:
        basket.shared_name = None


def shared_basket(session: Session, name: str) -> Basket | None:
    """The basket shared under ``name``, if any (names are matched exactly)."""
    return session.scalar(select(Basket).where(Basket.shared_name == name))


def reachable_basket(session: Session, basket_id: int, owner: Owner | None) -> tuple[Basket, bool]:
    """The basket ``basket_id`` and whether ``owner`` owns it; NotFound unless owned or shared.

    A basket that is neither the caller's nor shared answers exactly as one
    that does not exist, so ids cannot be probed.
    """
    basket = session.get(Basket, basket_id)
    owned = (
        basket is not None
        and owner is not None
        and (
            (owner.user_id is not None and basket.user_id == owner.user_id)
            or (owner.session_key is not None and basket.session_key == owner.session_key)
        )
    )
    if basket is None or not (owned or basket.shared_name is not None):
        raise NotFound(f"no basket {basket_id}")
    return basket, owned


def shared_rows(session: Session, visibility: Visibility, basket: Basket) -> list[Any]:
    """The visible series of a shared basket, in stable order, with NBIA's extra columns."""
    query = joined_series().add_columns(
        Series.protocol_name, Series.software_versions, Series.created_at
    )
    query = query.where(in_basket(basket.id), visible_series(visibility))
    return list(session.execute(ordered(session, query)))


# -- guest basket expiry -------------------------------------------------------------


def sweep_guest_baskets(session: Session, days: int, *, now: datetime | None = None) -> int:
    """Delete guest baskets not changed for ``days`` days; returns how many went.

    A guest's basket hangs on a browser cookie that may never come back, so
    untouched ones are removed rather than kept for ever.  Users' baskets are
    never swept, and neither is a guest basket someone is still filling (every
    add moves its ``updated_at``).
    """
    cutoff = (now or utcnow()) - timedelta(days=days)
    stale = select(Basket.id).where(Basket.session_key.is_not(None), Basket.updated_at < cutoff)
    ids = list(session.scalars(stale))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        session.execute(delete(BasketItem).where(BasketItem.basket_id.in_(chunk)))
        session.execute(delete(Basket).where(Basket.id.in_(chunk)))
    if ids:
        LOGGER.info("removed %d guest baskets untouched for %d days", len(ids), days)
    return len(ids)
